// The parent's distributor against a fake server whose children run the chunks right
// away with the engine, through a real file:// store.
#include "runtime/child_runs.hpp"

#include <culvert/culvert.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace culvert::runtime {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("culvert-child-runs-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string uri() const { return "file://" + path.string(); }
  fs::path path;
  static inline int counter = 0;
};

// The flow the children run: squares, with element 13 failing.
Flow make_flow(const std::string& storage) {
  Flow flow("squares");
  flow.result_storage(storage);
  auto nums = flow.task("numbers", [] { return std::vector<int>{}; });
  flow.map("square", [](const int& x) {
        if (x == 13) throw std::runtime_error("thirteen");
        return x * x;
      }, nums)
      .distributed({.max_workers = 3, .chunk_size = 4});
  return flow;
}

// What a child does: read its inputs, run the chunk, write the outcomes.
void run_child(const Flow& flow, const std::string& storage, int chunk, int64_t start) {
  auto store = open_object_store(storage);
  ASSERT_TRUE(store.is_ok());
  auto in = (*store)->get(chunk_uri(storage, "parent", 1, "square", "in", chunk));
  ASSERT_TRUE(in.is_ok()) << in.status().message();
  Executor ex(1);
  auto r = ex.run_chunk(flow, ChunkSpec{"square", static_cast<size_t>(start), *in});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_TRUE((*store)->put(chunk_uri(storage, "parent", 1, "square", "out", chunk), encode_chunk_outcomes(r->outcomes))
                  .is_ok());
}

// The server's side: children by chunk; each list() ends the unfinished children as
// `behave` says (default: run the chunk, Success).
class FakeServer {
 public:
  struct Child {
    ChildRunInfo info;
    int lists_seen = 0;
  };
  std::mutex mu;
  std::map<int, Child> children;
  size_t max_unfinished = 0;
  int creates = 0;
  // Returns the state a child shows at its n-th listing (n from 1), running it when it
  // says "run".
  std::function<std::string(int chunk, int n)> behave = [](int, int) { return std::string("run"); };
  const Flow* flow = nullptr;
  std::string storage;

  size_t unfinished_locked() {
    size_t n = 0;
    for (auto& [k, c] : children) n += !is_final(*parse_state(c.info.state));
    return n;
  }
};

class FakeApi final : public ChildRunsApi {
 public:
  explicit FakeApi(FakeServer& s) : s_(s) {}
  Status create(const std::string& parent, const std::string& task, const std::vector<ChunkRange>& chunks) override {
    EXPECT_EQ(parent, "parent");
    EXPECT_EQ(task, "square");
    std::lock_guard lk(s_.mu);
    ++s_.creates;
    for (const auto& c : chunks) {
      if (s_.children.count(c.chunk)) continue;
      FakeServer::Child ch;
      ch.info = {"child-" + std::to_string(c.chunk), c.chunk, c.start, c.end, "Scheduled", "", 0};
      s_.children[c.chunk] = ch;
    }
    s_.max_unfinished = std::max(s_.max_unfinished, s_.unfinished_locked());
    return Status::ok();
  }
  Result<ChildListing> list(const std::string&, const std::string&, int64_t, std::chrono::milliseconds) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard lk(s_.mu);
    ChildListing out;
    for (auto& [k, c] : s_.children) {
      if (!is_final(*parse_state(c.info.state)) || c.info.state == "Crashed") {
        std::string what = s_.behave(k, ++c.lists_seen);
        if (what == "run") {
          run_child(*s_.flow, s_.storage, k, c.info.start);
          c.info.state = "Success";
        } else {
          c.info.state = what;
          c.info.state_message = what == "Crashed" ? "image not found" : "";
        }
      }
      out.final_count += is_final(*parse_state(c.info.state));
      out.children.push_back(c.info);
    }
    return out;
  }

 private:
  FakeServer& s_;
};

struct Harness {
  TempDir dir;
  Flow flow = make_flow(dir.uri());
  FakeServer server;
  std::vector<int> values;
  Harness() {
    server.flow = &flow;
    server.storage = dir.uri();
  }
  Result<std::vector<ElementOutcome>> run(size_t count, std::function<bool()> cancelled = nullptr) {
    values.resize(count);
    for (size_t i = 0; i < count; ++i) values[i] = static_cast<int>(i);
    ChildRunDistributor d([this] { return std::make_unique<FakeApi>(server); },
                          DistributorOptions{.parent_run_id = "parent",
                                             .parent_attempt = 1,
                                             .poll_wait = std::chrono::milliseconds(10),
                                             .crash_settle = std::chrono::milliseconds(40)});
    DistributedMapCall call;
    call.task = "square";
    call.flow_run_id = "parent";
    call.storage = dir.uri();
    call.max_workers = 3;
    call.chunk_size = 4;
    call.count = count;
    call.encode_inputs = [this](size_t b, size_t e) {
      return Codec<std::vector<int>>::encode(std::vector<int>(values.begin() + static_cast<std::ptrdiff_t>(b),
                                                              values.begin() + static_cast<std::ptrdiff_t>(e)));
    };
    call.cancelled = std::move(cancelled);
    return d.run(call);
  }
};

TEST(ChildRunDistributorTest, RunsEveryChunkOnceWithAtMostMaxWorkersUnfinished) {
  Harness h;
  auto r = h.run(22);  // chunks of 4: 6 chunks, the last of 2
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 22u);
  for (size_t i = 0; i < 22; ++i) {
    if (i == 13) {
      EXPECT_EQ((*r)[i].state, State::kFailed);
      EXPECT_TRUE((*r)[i].reported);  // the child reported it
      continue;
    }
    EXPECT_EQ((*r)[i].state, State::kSuccess) << i;
    EXPECT_EQ((*r)[i].value, std::to_string(i * i));
  }
  EXPECT_EQ(h.server.children.size(), 6u);
  EXPECT_LE(h.server.max_unfinished, 3u);
  EXPECT_EQ(h.server.children[5].info.start, 20);
  EXPECT_EQ(h.server.children[5].info.end, 22);
  // The chunks' files are gone once read.
  size_t left = 0;
  for (auto it = fs::recursive_directory_iterator(h.dir.path); it != fs::recursive_directory_iterator(); ++it)
    left += it->is_regular_file();
  EXPECT_EQ(left, 0u);
}

TEST(ChildRunDistributorTest, AChildThatStaysCrashedFailsItsElementsWithTheReason) {
  Harness h;
  h.server.behave = [](int chunk, int) { return chunk == 1 ? std::string("Crashed") : std::string("run"); };
  auto r = h.run(10);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  for (size_t i = 4; i < 8; ++i) {
    EXPECT_EQ((*r)[i].state, State::kFailed);
    EXPECT_FALSE((*r)[i].reported);
    EXPECT_NE((*r)[i].message.find("chunk 1 (elements 4..7) ran as flow run child-1, which ended Crashed: image not found"),
              std::string::npos)
        << (*r)[i].message;
  }
  EXPECT_EQ((*r)[9].state, State::kSuccess);
}

TEST(ChildRunDistributorTest, AChildRescheduledAfterACrashIsWaitedFor) {
  Harness h;
  // Chunk 0 shows Crashed once (the server then reschedules it), then runs.
  h.server.behave = [](int chunk, int n) { return chunk == 0 && n == 1 ? std::string("Crashed") : std::string("run"); };
  auto r = h.run(8);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ((*r)[i].state, State::kSuccess) << i << " " << (*r)[i].message;
}

TEST(ChildRunDistributorTest, AChildThatWroteNoOutcomesFailsItsElements) {
  Harness h;
  h.server.behave = [](int chunk, int) { return chunk == 0 ? std::string("Success") : std::string("run"); };
  auto r = h.run(8);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ((*r)[0].state, State::kFailed);
  EXPECT_NE((*r)[0].message.find("it wrote no outcomes"), std::string::npos) << (*r)[0].message;
  EXPECT_EQ((*r)[4].state, State::kSuccess);
}

TEST(ChildRunDistributorTest, ACancelledRunStopsWaiting) {
  Harness h;
  h.server.behave = [](int, int) { return std::string("Running"); };
  std::atomic<int> asked{0};
  auto r = h.run(8, [&] { return ++asked > 3; });
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
}

TEST(ChildRunDistributorTest, UnwritableStorageFailsTheMapNamingIt) {
  Harness h;
  // A storage folder below a plain file: nobody can write there, root neither.
  std::ofstream(h.dir.path / "plain-file") << "x";
  h.server.storage = "file://" + (h.dir.path / "plain-file" / "maps").string();
  ChildRunDistributor d([&] { return std::make_unique<FakeApi>(h.server); },
                        DistributorOptions{.parent_run_id = "parent"});
  DistributedMapCall call;
  call.task = "square";
  call.storage = h.server.storage;
  call.chunk_size = 2;
  call.count = 4;
  call.encode_inputs = [](size_t, size_t) { return std::string("2:ab"); };
  auto r = d.run(call);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("cannot write the inputs of chunk 0 of task 'square'"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(h.server.creates, 0);
}

TEST(ChunkUriTest, TheTaskIsOnePathSegment) {
  EXPECT_EQ(chunk_uri("s3://b/p", "r1", 2, "score", "in", 7), "s3://b/p/r1/2/score/in/7");
  EXPECT_EQ(chunk_uri("s3://b/p/", "r1", 1, "a/b c", "out", 0), "s3://b/p/r1/1/a%2Fb%20c/out/0");
  EXPECT_EQ(chunk_uri("file:///x", "r", 1, "..", "in", 0), "file:///x/r/1/%2E%2E/in/0");
}

}  // namespace
}  // namespace culvert::runtime
