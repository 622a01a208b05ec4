// Precompiled header for the LibTorch half of the engine: parsed once per build.
#pragma once
#include <ATen/ATen.h>
#include <torch/types.h>
