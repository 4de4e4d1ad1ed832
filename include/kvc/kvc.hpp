#pragma once
// The umbrella header: policies, model composition, footprint, numerics, the cache and the
// per-layer attention parameters. (Attention kernels: include/kvc/backend/cpu/decode.hpp and
// extend.hpp.)
// (The gallery is include/kvc/models/gallery.hpp; CUDA device memory is
// include/kvc/backend/cuda/device_allocator.hpp.)

#include "kvc/attention/layer_params.hpp"
#include "kvc/attention/params.hpp"
#include "kvc/cache/kv_cache.hpp"
#include "kvc/config.hpp"
#include "kvc/model/footprint.hpp"
#include "kvc/model/layer.hpp"
#include "kvc/model/model.hpp"
#include "kvc/model/page_geometry.hpp"
#include "kvc/model/with_layer.hpp"
#include "kvc/numeric/convert.hpp"
#include "kvc/numeric/host_vector.hpp"
#include "kvc/numeric/quantize.hpp"
#include "kvc/numeric/vector.hpp"
#include "kvc/policy/family.hpp"
#include "kvc/policy/head_dim.hpp"
#include "kvc/policy/heads.hpp"
#include "kvc/policy/latent.hpp"
#include "kvc/policy/paging.hpp"
#include "kvc/policy/storage.hpp"
#include "kvc/policy/variant.hpp"
#include "kvc/policy/window.hpp"
#include "kvc/version.hpp"
