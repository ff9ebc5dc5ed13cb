// culvert_s3_copy put|get URI LOCAL_FILE — one transfer through culvert::ObjectStore,
// for timing against `aws s3 cp` (see s3_vs_awscli.sh). Endpoint: $CULVERT_S3_ENDPOINT.
#include <cstdio>
#include <cstring>

#include <culvert/storage.hpp>

int main(int argc, char** argv) {
  if (argc != 4 || (std::strcmp(argv[1], "put") != 0 && std::strcmp(argv[1], "get") != 0)) {
    std::fprintf(stderr, "usage: culvert_s3_copy put|get URI LOCAL_FILE\n");
    return 2;
  }
  auto store = culvert::open_object_store(argv[2]);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.status().to_string().c_str());
    return 1;
  }
  culvert::Status st = std::strcmp(argv[1], "put") == 0 ? (*store)->put_file(argv[2], argv[3])
                                                        : (*store)->get_file(argv[2], argv[3]);
  if (!st) {
    std::fprintf(stderr, "%s\n", st.to_string().c_str());
    return 1;
  }
  return 0;
}
