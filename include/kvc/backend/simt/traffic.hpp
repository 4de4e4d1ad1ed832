#pragma once
// What a launch in the emulator moved through global memory, counted as a GPU's memory
// system would see it: launch_options::traffic names a recorder, and every global access a
// kernel makes through its context (copy_async, copy_async_4, store_16) is recorded.
//
//   simt::memory_traffic traffic;
//   simt::launch(grid, block, shared, kernel, {.traffic = &traffic});
//   const simt::traffic_summary reads = traffic.summary(simt::access::read);
//   // reads.bytes, reads.requests, reads.sectors, traffic.times_read(address)
//
// A warp request is what one instruction of a warp asks for: the n-th access of a kind by
// each lane of a warp in a block (lanes run the same instructions, so their n-th accesses
// are one instruction's). Its sectors are the distinct 32-byte pieces its lanes touch: a
// fully coalesced 16-byte request of 32 lanes touches 16 sectors.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace kvc::simt {

enum class access : unsigned char { read, write };

struct traffic_summary {
  std::uint64_t bytes = 0;                  ///< bytes moved (zero-filled copies move none)
  std::uint64_t accesses = 0;               ///< lane accesses
  std::uint64_t requests = 0;               ///< warp requests
  std::uint64_t sectors = 0;                ///< 32-byte sectors touched, summed over requests
  std::uint64_t widest = 0, narrowest = 0;  ///< bytes of the widest and narrowest access
};

class memory_traffic {
 public:
  struct record {
    std::uint64_t block;
    unsigned warp;
    std::uint64_t index;  ///< the lane's n-th access of this kind in this block
    access kind;
    std::uintptr_t address;
    unsigned bytes;  ///< 0: a zero-filled copy, nothing read
  };

  void add(const record& r) {
    std::lock_guard lock(mutex_);
    records_.push_back(r);
  }
  void clear() {
    std::lock_guard lock(mutex_);
    records_.clear();
  }

  traffic_summary summary(access kind) const {
    std::lock_guard lock(mutex_);
    traffic_summary s;
    std::map<std::tuple<std::uint64_t, unsigned, std::uint64_t>, std::set<std::uintptr_t>> requests;
    for (const record& r : records_) {
      if (r.kind != kind || r.bytes == 0) continue;
      s.bytes += r.bytes;
      ++s.accesses;
      s.widest = r.bytes > s.widest ? r.bytes : s.widest;
      s.narrowest = s.narrowest == 0 || r.bytes < s.narrowest ? r.bytes : s.narrowest;
      auto& sectors = requests[{r.block, r.warp, r.index}];
      for (std::uintptr_t a = r.address / 32; a <= (r.address + r.bytes - 1) / 32; ++a)
        sectors.insert(a);
    }
    s.requests = requests.size();
    for (const auto& entry : requests) s.sectors += entry.second.size();
    return s;
  }

  /// Returns how many times each byte of [begin, begin + bytes) was read or written.
  std::vector<unsigned> coverage(access kind, const void* begin, std::size_t bytes) const {
    std::lock_guard lock(mutex_);
    std::vector<unsigned> times(bytes, 0);
    const auto first = reinterpret_cast<std::uintptr_t>(begin);
    for (const record& r : records_) {
      if (r.kind != kind || r.bytes == 0) continue;
      for (std::uintptr_t a = r.address; a < r.address + r.bytes; ++a)
        if (a >= first && a < first + bytes) ++times[a - first];
    }
    return times;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<record> records_;
};

}  // namespace kvc::simt
