#include "server/router.hpp"

#include <stdexcept>

namespace culvert::server {
namespace {

bool is_param(std::string_view seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

}  // namespace

const std::string& PathParams::get(std::string_view name) const {
  static const std::string kEmpty;
  for (const auto& [k, v] : items_) {
    if (k == name) return v;
  }
  return kEmpty;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

size_t Router::add(RouteSpec spec) {
  if (spec.pattern.empty() || spec.pattern.front() != '/')
    throw std::logic_error("route pattern must start with '/': " + spec.pattern);
  Compiled c;
  for (auto seg : split_path(spec.pattern)) c.segments.emplace_back(seg);
  specs_.push_back(std::move(spec));
  compiled_.push_back(std::move(c));
  return specs_.size() - 1;
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match m;
  auto segs = split_path(path);
  // A literal segment beats a parameter: "/flow-runs/x" must not shadow nothing here,
  // but e.g. "/task-runs/states" vs "/task-runs/{id}" prefers the literal.
  int best_score = -1;
  for (size_t i = 0; i < specs_.size(); ++i) {
    const auto& c = compiled_[i];
    if (c.segments.size() != segs.size()) continue;
    int score = 0;
    bool ok = true;
    for (size_t k = 0; k < segs.size(); ++k) {
      if (is_param(c.segments[k])) {
        if (segs[k].empty()) {
          ok = false;
          break;
        }
      } else if (c.segments[k] != segs[k]) {
        ok = false;
        break;
      } else {
        ++score;
      }
    }
    if (!ok) continue;
    if (specs_[i].method != method) {
      if (m.status != 200) {
        m.status = 405;
        if (m.allow.find(specs_[i].method) == std::string::npos) {
          if (!m.allow.empty()) m.allow += ", ";
          m.allow += specs_[i].method;
        }
      }
      continue;
    }
    if (score <= best_score) continue;
    best_score = score;
    m.status = 200;
    m.index = i;
    m.params = PathParams();
    for (size_t k = 0; k < segs.size(); ++k) {
      const auto& s = c.segments[k];
      if (is_param(s)) m.params.add(s.substr(1, s.size() - 2), std::string(segs[k]));
    }
  }
  return m;
}

}  // namespace culvert::server
