// RunResult: the run summary (find, the JSON document of docs/FORMATS.md, the table).
#include <culvert/executor.hpp>

#include "core/timefmt.hpp"
#include "engine/json_writer.hpp"

namespace culvert {

const TaskRunSummary* RunResult::find(std::string_view task, int map_index) const {
  for (const auto& t : task_runs)
    if (t.task == task && t.map_index == map_index) return &t;
  return nullptr;
}

std::string RunResult::to_json() const {
  detail::JsonWriter w;
  w.begin_object();
  w.key("flow").str(flow);
  w.key("flow_run_id").str(flow_run_id);
  w.key("state").str(state_name(state));
  w.key("message").str(message);
  w.key("task_runs").begin_array();
  for (const auto& t : task_runs) {
    w.begin_object();
    w.key("task").str(t.task);
    w.key("map_index").num(t.map_index);
    w.key("state").str(state_name(t.state));
    w.key("attempts").num(t.attempts);
    w.key("duration_ms").num(t.duration_ms);
    w.key("message").str(t.message);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

std::string RunResult::to_text() const {
  size_t wname = 4;
  for (const auto& t : task_runs) {
    size_t len = t.task.size() + (t.map_index >= 0 ? std::to_string(t.map_index).size() + 2 : 0);
    wname = std::max(wname, len);
  }
  std::string out;
  auto pad = [](std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
  };
  out += pad("TASK", wname + 2) + pad("STATE", 15) + pad("ATTEMPTS", 10) + pad("DURATION", 11) + "MESSAGE\n";
  for (const auto& t : task_runs) {
    std::string name = t.task + (t.map_index >= 0 ? "[" + std::to_string(t.map_index) + "]" : "");
    out += pad(name, wname + 2) + pad(state_name(t.state), 15) + pad(std::to_string(t.attempts), 10) +
           pad(std::to_string(t.duration_ms) + "ms", 11) + t.message + "\n";
  }
  out += "flow " + flow + " (" + flow_run_id + "): " + state_name(state);
  if (!message.empty()) out += " - " + message;
  out += "\n";
  return out;
}

}  // namespace culvert
