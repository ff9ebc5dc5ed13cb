// The Culvert C++ SDK: write a flow, build it, run it locally or under orchestration.
// See docs/SDK.md.
#pragma once

#include <culvert/cancel.hpp>
#include <culvert/clock.hpp>
#include <culvert/codec.hpp>
#include <culvert/executor.hpp>
#include <culvert/flow.hpp>
#include <culvert/main.hpp>
#include <culvert/observer.hpp>
#include <culvert/run_config.hpp>
#include <culvert/state.hpp>
#include <culvert/status.hpp>
#include <culvert/storage.hpp>
