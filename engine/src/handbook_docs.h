// The handbook style of make_synthetic_doc (SyntheticDocStyle::handbook). Private to the engine.
#pragma once

#include "l2a/engine/synthetic_docs.h"

namespace l2a {

SyntheticDoc make_handbook_doc(const SyntheticDocOptions& options);

}  // namespace l2a
