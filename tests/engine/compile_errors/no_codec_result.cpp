// expect-error: has no codec. Give it one
#include <culvert/culvert.hpp>
struct Point { int x = 0; };
int main() {
  culvert::Flow flow("f");
  flow.task("p", [] { return Point{}; }).retries(2).result("file:///tmp/{flow_run_id}");
}
