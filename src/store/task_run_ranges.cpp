#include "store/task_run_ranges.hpp"

#include <algorithm>
#include <cstring>

#include "core/crypto.hpp"

namespace culvert::store::detail {

TaskRunIds::TaskRunIds(std::string_view flow_run_id, std::string_view task) {
  std::string key;
  key.reserve(flow_run_id.size() + task.size() + 1);
  key.append(flow_run_id).push_back('\0');
  key.append(task);
  std::string digest = sha256_raw(key);
  std::memcpy(prefix_, digest.data(), sizeof prefix_);
  prefix_[6] = static_cast<unsigned char>((prefix_[6] & 0x0f) | 0x80);  // UUID version 8
  prefix_[8] = static_cast<unsigned char>((prefix_[8] & 0x3f) | 0x80);  // RFC 9562 variant
}

std::string TaskRunIds::id(int64_t map_index) const {
  unsigned char b[16];
  std::memcpy(b, prefix_, sizeof prefix_);
  auto v = static_cast<uint32_t>(map_index + 1);  // -1 (unmapped) is 0
  for (int i = 0; i < 4; ++i) b[12 + i] = static_cast<unsigned char>(v >> (24 - 8 * i));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++pos;  // the dashes
    out[pos++] = kHex[b[i] >> 4];
    out[pos++] = kHex[b[i] & 0xf];
  }
  return out;
}

std::string TaskRunIds::id(const StoredRange& row, int64_t map_index) const {
  return map_index == row.lo && row.id ? *row.id : id(map_index);
}

namespace {

void apply(std::optional<RangeFields>& f, const RangeUpdate& u) {
  std::optional<int64_t> start = u.start;
  if (!start && u.state == State::kRunning) start = u.ts;
  std::optional<int64_t> end = is_final(u.state) ? std::optional<int64_t>(u.ts) : std::nullopt;
  std::optional<int64_t> next = u.state == State::kRetrying ? u.next_start : std::nullopt;
  if (f && u.run_attempt < f->run_attempt) return;  // an earlier attempt of the flow run
  if (!f || u.run_attempt > f->run_attempt) {  // new, or a later attempt starts afresh
    f = RangeFields{u.state,  std::string(u.message), u.attempts ? int64_t{*u.attempts} : -1, u.ts, u.ts, start, end,
                    next,     u.run_attempt};
    return;
  }
  if (u.ts < f->updated) return;  // older than what the task run already says
  f->state = u.state;
  f->message.assign(u.message);
  if (u.attempts) f->attempts = *u.attempts;
  f->updated = u.ts;
  if (!f->start) f->start = start;
  f->end = end;
  f->next_start = next;
}

}  // namespace

RangeMerge merge_task_run_ranges(const TaskRunIds& ids, const std::vector<StoredRange>& stored,
                                 const std::vector<RangeUpdate>& updates) {
  // Cut the map indexes at every boundary of a stored row or an update: within one cell
  // every task run starts alike and receives the same updates, so it ends alike.
  std::vector<int64_t> bounds;
  bounds.reserve(2 * (stored.size() + updates.size()));
  for (const auto& r : stored) bounds.insert(bounds.end(), {r.lo, r.hi() + 1});
  for (const auto& u : updates) bounds.insert(bounds.end(), {u.lo, u.hi + 1});
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  const size_t n = bounds.empty() ? 0 : bounds.size() - 1;  // cell k: [bounds[k], bounds[k+1])
  auto cell_of = [&](int64_t map_index) {
    return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), map_index) - bounds.begin());
  };

  struct Cell {
    std::optional<RangeFields> f;
    const StoredRange* row = nullptr;
  };
  std::vector<Cell> cells(n);
  for (const auto& r : stored)
    for (size_t k = cell_of(r.lo); k < n && bounds[k] <= r.hi(); ++k) cells[k] = Cell{r.f, &r};
  for (const auto& u : updates)
    for (size_t k = cell_of(u.lo); k < n && bounds[k] <= u.hi; ++k) apply(cells[k].f, u);

  // Cells back into rows; a cell joins its left neighbour when they are alike (unless it
  // begins a row that keeps a stored id).
  std::vector<StoredRange> out;
  for (size_t k = 0; k < n; ++k) {
    if (!cells[k].f) continue;
    const int64_t lo = bounds[k], count = bounds[k + 1] - bounds[k];
    std::optional<std::string> id;
    if (cells[k].row && cells[k].row->lo == lo) id = cells[k].row->id;
    if (!id && !out.empty() && out.back().hi() + 1 == lo && out.back().f == *cells[k].f) {
      out.back().count += count;
      continue;
    }
    out.push_back(StoredRange{lo, count, std::move(id), std::move(*cells[k].f)});
  }

  RangeMerge m;
  auto piece_at = [&](int64_t map_index) {  // the output row that holds map_index
    auto it = std::upper_bound(out.begin(), out.end(), map_index,
                               [](int64_t v, const StoredRange& r) { return v < r.lo; });
    return it - 1;
  };
  std::vector<bool> unchanged(out.size(), false);
  for (const auto& r : stored) {
    auto it = std::lower_bound(out.begin(), out.end(), r.lo,
                               [](const StoredRange& p, int64_t v) { return p.lo < v; });
    if (it == out.end() || it->lo != r.lo) {
      m.remove.push_back(r.lo);
    } else if (it->count == r.count && it->id == r.id && it->f == r.f) {
      unchanged[static_cast<size_t>(it - out.begin())] = true;
    }
  }
  m.ids.reserve(updates.size());
  for (const auto& u : updates) m.ids.push_back(ids.id(*piece_at(u.lo), u.lo));
  for (size_t i = 0; i < out.size(); ++i)
    if (!unchanged[i]) m.write.push_back(std::move(out[i]));
  return m;
}

}  // namespace culvert::store::detail
