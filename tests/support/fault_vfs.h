// A fault-injecting SQLite VFS for tests (RELIABILITY.md DB-6): a shim over the default (unix)
// VFS, registered under FaultVfs::kName, that passes everything through but fails the N-th call
// of the armed file operations (xRead, xWrite, xTruncate, xSync, xFileSize) with SQLITE_IOERR_*
// or SQLITE_FULL, once or for every later call until disarmed — SQLite's own I/O-error loops
// (test_vfs.c, "ioerr" tests) as a small C++ class. Open a connection with it by passing its name
// to sqlite3_open_v2 (StoreOptions::vfs). Calls are counted from every connection and thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace momentkv::test {

class FaultVfs {
 public:
  static constexpr const char* kName = "momentkv-fault";

  // Bit mask of the operations that count (and fail).
  enum Op : unsigned {
    kRead = 1u << 0,
    kWrite = 1u << 1,
    kTruncate = 1u << 2,
    kSync = 1u << 3,
    kFileSize = 1u << 4,
  };
  enum class Error {
    kIo,    // the operation's SQLITE_IOERR_* code (READ, WRITE, TRUNCATE, FSYNC, FSTAT)
    kFull,  // SQLITE_FULL
  };
  enum class Mode { kOnce, kForever };

  // Registers the shim (not as the default VFS) on first use; the same instance after that.
  static FaultVfs& instance();

  // From now on count the calls of `ops`; the `n`-th (1-based) fails, and with kForever every
  // later one too. n = 0 only counts. Resets the counters.
  void arm(unsigned ops, int64_t n, Mode mode, Error error);
  // No more faults; counting stops.
  void disarm();
  // Calls of the armed operations since arm(), and how many of them were failed.
  int64_t calls() const { return calls_.load(); }
  int64_t faults() const { return faults_.load(); }

  // For the shim's callbacks: whether this call of `op` fails, and with which SQLite code (0: it
  // does not).
  int on_call(Op op);

 private:
  FaultVfs();
  std::atomic<unsigned> ops_{0};
  std::atomic<int64_t> fail_at_{0};
  std::atomic<bool> forever_{false};
  std::atomic<bool> full_{false};
  std::atomic<int64_t> calls_{0};
  std::atomic<int64_t> faults_{0};
};

}  // namespace momentkv::test
