// Distributed mapped tasks: how the engine hands a mapped task marked
// `.distributed(...)` to something that runs its elements elsewhere, and how one chunk
// of such a map is run where it lands (docs/SDK.md "Distributed maps").
//
// Under orchestration (`execute`), the runtime's distributor runs each chunk as a child
// flow run that agents launch like any run; the chunk's inputs and outputs go through
// the user's storage. Without a distributor (a local `run`, tests) a distributed map
// runs like any mapped task, on the executor's own workers.
//
// The two sides meet in storage through two encodings, both defined here:
//   the chunk's inputs: the elements [begin, end), as the element type's codec frames a
//     vector of them (MapOps::encode_range / decode_input);
//   the chunk's outcomes: encode_chunk_outcomes / decode_chunk_outcomes.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <culvert/state.hpp>
#include <culvert/status.hpp>

namespace culvert {

struct Distributed;

// What became of one element of a chunk.
struct ElementOutcome {
  State state = State::kPending;
  int attempts = 0;
  std::string message;
  // The element's output as the task's codec encodes it: set for a successful element of
  // a task with a value, empty otherwise.
  std::string value;
  // Whether the element's task-run states were already reported (by the chunk's run).
  // False for an element that never ran (its chunk could not run): the engine reports
  // its final state then.
  bool reported = true;
};

// The outcomes of a chunk, in element order, as bytes, and back. decode: InvalidArgument
// when malformed or when it does not hold exactly `expected` outcomes.
std::string encode_chunk_outcomes(const std::vector<ElementOutcome>& outcomes);
Result<std::vector<ElementOutcome>> decode_chunk_outcomes(std::string_view bytes, size_t expected);

// What the engine asks of a distributor for one distributed map.
struct DistributedMapCall {
  std::string task;         // the mapped task's name
  std::string flow_run_id;  // the run the map belongs to
  // Where the chunks' inputs and outputs go (the task's `storage`, else the flow's
  // result storage; never empty).
  std::string storage;
  int max_workers = 1;   // chunks running at once, at most
  int chunk_size = 1;    // elements per chunk (the last may hold fewer), resolved
  size_t count = 0;      // elements
  // The encoded inputs of elements [begin, end). Thread-safe; valid during run() only.
  std::function<std::string(size_t begin, size_t end)> encode_inputs;
  // True once the run is cancelled: run() should return promptly (kCancelled).
  std::function<bool()> cancelled;
};

class MapDistributor {
 public:
  virtual ~MapDistributor() = default;
  // Runs every element of the map elsewhere and returns one outcome per element, in
  // order. An error Status fails every element of the map with its message (Cancelled
  // when the run was cancelled). Blocks; called from one of the executor's workers.
  virtual Result<std::vector<ElementOutcome>> run(const DistributedMapCall& call) = 0;
};

// One chunk of a distributed map, as its run executes it (Executor::run_chunk).
struct ChunkSpec {
  std::string task;    // the mapped task's name
  size_t start = 0;    // the map index of the chunk's first element
  std::string inputs;  // the encoded elements (DistributedMapCall::encode_inputs)
};

struct ChunkResult {
  // Success when every element succeeded (or was skipped), else Failed (Cancelled when
  // the run was cancelled), with the first element that did not.
  State state = State::kSuccess;
  std::string message;
  std::vector<ElementOutcome> outcomes;
};

}  // namespace culvert
