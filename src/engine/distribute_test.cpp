// Distributed maps in the engine: validation, describe, the local fallback, the driver
// with a distributor, one chunk's run, and the chunk outcome encoding.
#include <culvert/culvert.hpp>
#include <culvert/distribute.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/flow_impl.hpp"

namespace culvert {
namespace {

struct Opaque {  // a type without a codec
  int v = 0;
};

class Events final : public RunObserver {
 public:
  void on_task_run(const TaskRunEvent& ev) override {
    std::lock_guard lk(mu);
    if (is_final(ev.state)) finals.push_back({std::string(ev.task), ev.map_index, ev.state, std::string(ev.message)});
  }
  struct Final {
    std::string task;
    int map_index;
    State state;
    std::string message;
  };
  std::mutex mu;
  std::vector<Final> finals;
};

// Runs each chunk right here with a second executor, as a child run would, through the
// same encodings as storage would hold.
class InlineDistributor final : public MapDistributor {
 public:
  InlineDistributor(const Flow& flow, int workers) : flow_(flow), executor_(workers) {}
  Result<std::vector<ElementOutcome>> run(const DistributedMapCall& call) override {
    calls.push_back(call.task);
    chunk_size = call.chunk_size;
    std::vector<ElementOutcome> all;
    for (size_t b = 0; b < call.count; b += static_cast<size_t>(call.chunk_size)) {
      size_t e = std::min(call.count, b + static_cast<size_t>(call.chunk_size));
      ChunkSpec spec{call.task, b, call.encode_inputs(b, e)};
      RunOptions opts;
      opts.flow_run_id = call.flow_run_id;
      opts.observers = {&child_events};
      auto r = executor_.run_chunk(flow_, spec, opts);
      if (!r) return r.status();
      auto decoded = decode_chunk_outcomes(encode_chunk_outcomes(r->outcomes), e - b);
      if (!decoded) return decoded.status();
      for (auto& o : *decoded) all.push_back(std::move(o));
      ++chunks;
    }
    return all;
  }
  const Flow& flow_;
  Executor executor_;
  Events child_events;
  std::vector<std::string> calls;
  int chunks = 0;
  int chunk_size = 0;
};

class FailingDistributor final : public MapDistributor {
 public:
  Result<std::vector<ElementOutcome>> run(const DistributedMapCall&) override {
    return Status(StatusCode::kUnavailable, "no agent could launch chunk 0: image not found");
  }
};

TEST(DistributedMapTest, ValidationNamesWhatIsMissing) {
  {
    Flow f("nostorage");
    auto v = f.task("v", [] { return std::vector<int>{1}; });
    f.map("m", [](const int& x) { return x; }, v).distributed({.max_workers = 2});
    Status s = f.validate();
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("task 'm' is distributed: its chunks' inputs and outputs need storage"),
              std::string::npos) << s.message();
    EXPECT_NE(s.message().find(".result_storage("), std::string::npos);
  }
  {
    Flow f("notamap");
    f.task("t", [] { return 1; }).distributed({.storage = "file:///tmp/x"});
    Status s = f.validate();
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("only a mapped task (flow.map) can be"), std::string::npos) << s.message();
  }
  {
    Flow f("nocodec");
    auto v = f.task("v", [] { return std::vector<Opaque>{Opaque{}}; });
    f.map("m", [](const Opaque& x) { return x.v; }, v).distributed({.storage = "s3://b/p"});
    Status s = f.validate();
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("their type has no codec"), std::string::npos) << s.message();
  }
  {
    Flow f("bounds");
    auto v = f.task("v", [] { return std::vector<int>{1}; });
    f.map("m", [](const int& x) { return x; }, v)
        .distributed({.max_workers = 0, .chunk_size = -1, .storage = "http://nope"});
    Status s = f.validate();
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("max_workers must be 1..10000 (got 0)"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("chunk_size must be"), std::string::npos);
    EXPECT_NE(s.message().find("storage 'http://nope' must be"), std::string::npos);
  }
}

TEST(DistributedMapTest, DescribeCarriesTheSpecWithTheResolvedStorage) {
  Flow f("d");
  f.result_storage("s3://bucket/maps");
  auto v = f.task("v", [] { return std::vector<int>{1}; });
  f.map("m", [](const int& x) { return x; }, v)
      .distributed({.max_workers = 20, .chunk_size = 5, .run_config = DockerRun{.image = "small:1"}});
  ASSERT_TRUE(f.validate().is_ok()) << f.validate().message();
  auto j = nlohmann::json::parse(f.describe_json());
  EXPECT_EQ(j["result_storage"], "s3://bucket/maps");
  const auto& m = j["tasks"][1];
  ASSERT_EQ(m["name"], "m");
  EXPECT_EQ(m["distributed"]["max_workers"], 20);
  EXPECT_EQ(m["distributed"]["chunk_size"], 5);
  EXPECT_EQ(m["distributed"]["storage"], "s3://bucket/maps");
  EXPECT_EQ(m["distributed"]["run_config"]["type"], "docker");
  EXPECT_EQ(m["distributed"]["run_config"]["image"], "small:1");
  EXPECT_FALSE(j["tasks"][0].contains("distributed"));
}

TEST(DistributedMapTest, AMapHasAtMostTenThousandChunks) {
  auto size = [](int chunk, int workers, size_t count) {
    Distributed d;
    d.chunk_size = chunk;
    d.max_workers = workers;
    return detail::distributed_chunk_size(d, count);
  };
  EXPECT_EQ(size(100, 50, 10000), 100u);
  EXPECT_EQ(size(0, 20, 200), 10u);
  EXPECT_EQ(size(0, 20, 201), 11u);
  EXPECT_EQ(size(1, 20, 10000), 1u);
  EXPECT_EQ(size(1, 20, 10001), 2u);      // 5001 chunks, not 10001
  EXPECT_EQ(size(1, 20, 1000000), 100u);  // 10,000 chunks
  EXPECT_EQ(size(0, 1, 0), 1u);
}

class DistributedRunTest : public ::testing::TestWithParam<int> {};

TEST_P(DistributedRunTest, WithoutADistributorTheMapRunsHere) {
  std::atomic<int> calls{0};
  Flow flow("local");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [] { return std::vector<int>{1, 2, 3, 4}; });
  auto sq = flow.map("square", [&](const int& x) { calls++; return x * x; }, nums).distributed({.max_workers = 2});
  auto sum = flow.task("sum", [](const std::vector<int>& v) { return v[0] + v[1] + v[2] + v[3]; }, sq);
  Executor ex(GetParam());
  auto r = ex.run(flow);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->state, State::kSuccess);
  EXPECT_EQ(*r->value(sum), 30);
  EXPECT_EQ(calls.load(), 4);
}

TEST_P(DistributedRunTest, ADistributorRunsTheChunksAndDownstreamGetsTheValuesInOrder) {
  std::atomic<int> calls{0};
  Flow flow("squares");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [] {
    std::vector<int> v(10);
    for (int i = 0; i < 10; ++i) v[static_cast<size_t>(i)] = i;
    return v;
  });
  auto sq = flow.map("square", [&](TaskContext& ctx, const int& x) {
               calls++;
               EXPECT_EQ(ctx.map_index(), x);  // the absolute index, not the chunk's
               EXPECT_EQ(ctx.flow_run_id(), "parent-run");
               return x * x;
             }, nums)
                .distributed({.max_workers = 2, .chunk_size = 3});
  auto sum = flow.task("sum", [](const std::vector<int>& v) {
    long s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += v[i] * static_cast<long>(i + 1);  // order matters
    return s;
  }, sq);
  InlineDistributor dist(flow, GetParam());
  Events parent_events;
  Executor ex(GetParam());
  RunOptions opts;
  opts.flow_run_id = "parent-run";
  opts.distributor = &dist;
  opts.observers = {&parent_events};
  auto r = ex.run(flow, opts);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->state, State::kSuccess) << r->message;
  long want = 0;
  for (long i = 0; i < 10; ++i) want += i * i * (i + 1);
  EXPECT_EQ(*r->value(sum), want);
  EXPECT_EQ(calls.load(), 10);
  EXPECT_EQ(dist.chunks, 4);  // 3 + 3 + 3 + 1
  EXPECT_EQ(dist.chunk_size, 3);
  // The children reported every element, with absolute indexes; the parent none of them.
  std::set<int> seen;
  for (const auto& e : dist.child_events.finals) {
    EXPECT_EQ(e.task, "square");
    EXPECT_EQ(e.state, State::kSuccess);
    seen.insert(e.map_index);
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 9);
  for (const auto& e : parent_events.finals) EXPECT_NE(e.task, "square") << e.map_index;
}

TEST_P(DistributedRunTest, AFailedElementFailsTheMapAndTheTriggersDecide) {
  Flow flow("fails");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [] { return std::vector<int>{10, 11, 12, 13, 14}; });
  auto sq = flow.map("square", [](const int& x) {
               if (x == 13) throw std::runtime_error("thirteen");
               return x * x;
             }, nums)
                .retries(1)
                .reference()
                .distributed({.max_workers = 2, .chunk_size = 2});
  flow.task("sum", [](const std::vector<int>& v) { return v.size(); }, sq);
  auto cleanup = flow.task("cleanup", [] { return 1; }).after(sq).trigger(Trigger::kAllFinished);
  InlineDistributor dist(flow, GetParam());
  Executor ex(GetParam());
  RunOptions opts;
  opts.distributor = &dist;
  auto r = ex.run(flow, opts);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->state, State::kFailed);
  EXPECT_NE(r->message.find("reference task 'square' ended Failed: task run [3] ended Failed"), std::string::npos)
      << r->message;
  EXPECT_EQ(r->find("sum")->state, State::kTriggerFailed);
  EXPECT_EQ(r->find("cleanup")->state, State::kSuccess);
  (void)cleanup;
  // The element's own retries ran inside its chunk.
  bool found = false;
  for (const auto& e : dist.child_events.finals) {
    if (e.map_index == 3) {
      found = true;
      EXPECT_EQ(e.state, State::kFailed);
      EXPECT_NE(e.message.find("thirteen"), std::string::npos);
    }
  }
  EXPECT_TRUE(found);
}

TEST_P(DistributedRunTest, ADistributorErrorFailsEveryElementWithItsReason) {
  Flow flow("unlaunchable");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [] { return std::vector<int>{1, 2, 3}; });
  flow.map("square", [](const int& x) { return x * x; }, nums).distributed({.max_workers = 2});
  FailingDistributor dist;
  Events events;
  Executor ex(GetParam());
  RunOptions opts;
  opts.distributor = &dist;
  opts.observers = {&events};
  auto r = ex.run(flow, opts);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->state, State::kFailed);
  int failed = 0;
  for (const auto& e : events.finals) {
    if (e.task != "square") continue;
    EXPECT_EQ(e.state, State::kFailed);
    EXPECT_NE(e.message.find("image not found"), std::string::npos);
    ++failed;
  }
  EXPECT_EQ(failed, 3);  // reported by the parent, since no chunk ran them
}

TEST_P(DistributedRunTest, AnEmptyInputNeedsNoDistributor) {
  Flow flow("empty");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [] { return std::vector<int>{}; });
  auto sq = flow.map("square", [](const int& x) { return x * x; }, nums).distributed({});
  auto n = flow.task("n", [](const std::vector<int>& v) { return v.size(); }, sq);
  FailingDistributor dist;  // would fail if called
  Executor ex(GetParam());
  RunOptions opts;
  opts.distributor = &dist;
  auto r = ex.run(flow, opts);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->state, State::kSuccess) << r->message;
  EXPECT_EQ(*r->value(n), 0u);
}

TEST_P(DistributedRunTest, AChunkRunsOnlyItsElementsWithTheirOwnRetries) {
  std::atomic<int> upstream_calls{0}, downstream_calls{0};
  std::mutex mu;
  std::map<int, int> attempts_by_index;
  Flow flow("chunk");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [&] { upstream_calls++; return std::vector<std::string>{}; });
  auto m = flow.map("shout", [&](TaskContext& ctx, const std::string& s) {
              {
                std::lock_guard lk(mu);
                attempts_by_index[ctx.map_index()] = ctx.attempt();
              }
              if (s == "flaky" && ctx.attempt() == 1) throw std::runtime_error("first attempt fails");
              return s + "!";
            }, nums)
               .retries(2)
               .distributed({.chunk_size = 3});
  flow.task("after", [&](const std::vector<std::string>&) { downstream_calls++; return 1; }, m);
  Executor ex(GetParam());
  std::vector<std::string> elems{"a", "flaky", "c"};
  ChunkSpec spec{"shout", 30, Codec<std::vector<std::string>>::encode(elems)};
  Events events;
  RunOptions opts;
  opts.observers = {&events};
  auto r = ex.run_chunk(flow, spec, opts);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->state, State::kSuccess) << r->message;
  ASSERT_EQ(r->outcomes.size(), 3u);
  EXPECT_EQ(r->outcomes[0].value, "a!");
  EXPECT_EQ(r->outcomes[1].value, "flaky!");
  EXPECT_EQ(r->outcomes[1].attempts, 2);
  EXPECT_EQ(r->outcomes[2].value, "c!");
  EXPECT_EQ(upstream_calls.load(), 0);
  EXPECT_EQ(downstream_calls.load(), 0);
  EXPECT_EQ(attempts_by_index.size(), 3u);
  EXPECT_EQ(attempts_by_index.begin()->first, 30);
  EXPECT_EQ(attempts_by_index.rbegin()->first, 32);
  for (const auto& e : events.finals) EXPECT_GE(e.map_index, 30);
}

TEST_P(DistributedRunTest, AChunkRefusesWhatIsNotItsToRun) {
  Flow flow("refuse");
  flow.result_storage("file:///tmp/unused");
  auto nums = flow.task("numbers", [] { return std::vector<int>{}; });
  flow.map("plain", [](const int& x) { return x; }, nums);
  flow.map("dist", [](const int& x) { return x; }, nums).distributed({});
  Executor ex(GetParam());
  auto unknown = ex.run_chunk(flow, {"nope", 0, ""});
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  auto plain = ex.run_chunk(flow, {"plain", 0, ""});
  EXPECT_NE(plain.status().message().find("is not a distributed map"), std::string::npos);
  auto garbage = ex.run_chunk(flow, {"dist", 0, "7:abc"});
  EXPECT_NE(garbage.status().message().find("do not decode"), std::string::npos) << garbage.status().message();
}

INSTANTIATE_TEST_SUITE_P(Workers, DistributedRunTest, ::testing::Values(1, 3));

TEST(ChunkOutcomesTest, RoundTripAndMalformedInput) {
  std::vector<ElementOutcome> in{{State::kSuccess, 1, "", std::string("a\0b:c", 5)},
                                 {State::kFailed, 3, "boom: 1:2", ""},
                                 {State::kSkipped, 1, "skipped", ""}};
  std::string bytes = encode_chunk_outcomes(in);
  auto out = decode_chunk_outcomes(bytes, 3);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].value, std::string("a\0b:c", 5));
  EXPECT_EQ((*out)[1].state, State::kFailed);
  EXPECT_EQ((*out)[1].attempts, 3);
  EXPECT_EQ((*out)[1].message, "boom: 1:2");
  EXPECT_TRUE((*out)[2].reported);
  EXPECT_FALSE(decode_chunk_outcomes(bytes, 2).is_ok());
  EXPECT_FALSE(decode_chunk_outcomes(bytes, 4).is_ok());
  EXPECT_FALSE(decode_chunk_outcomes(bytes.substr(0, bytes.size() - 2), 3).is_ok());
  EXPECT_FALSE(decode_chunk_outcomes("junk", 0).is_ok());
  std::string bad_state = bytes;
  bad_state.replace(bad_state.find("7:Success"), 9, "7:Sucsess");
  EXPECT_NE(decode_chunk_outcomes(bad_state, 3).status().message().find("unknown state"), std::string::npos);
}

}  // namespace
}  // namespace culvert
