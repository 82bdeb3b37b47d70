#include "tests/support/fault_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <stdexcept>

namespace momentkv::test {

namespace {

// The shim's file: its own header, then the real VFS's file object.
struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
};

sqlite3_file* real_of(sqlite3_file* f) {
  return reinterpret_cast<FaultFile*>(f)->real;
}

int io_close(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
}

int io_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  if (const int rc = FaultVfs::instance().on_call(FaultVfs::kRead)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xRead(r, buf, n, off);
}

int io_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (const int rc = FaultVfs::instance().on_call(FaultVfs::kWrite)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xWrite(r, buf, n, off);
}

int io_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = FaultVfs::instance().on_call(FaultVfs::kTruncate)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xTruncate(r, size);
}

int io_sync(sqlite3_file* f, int flags) {
  if (const int rc = FaultVfs::instance().on_call(FaultVfs::kSync)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSync(r, flags);
}

int io_file_size(sqlite3_file* f, sqlite3_int64* size) {
  if (const int rc = FaultVfs::instance().on_call(FaultVfs::kFileSize)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileSize(r, size);
}

int io_lock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xLock(r, level);
}

int io_unlock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnlock(r, level);
}

int io_check_reserved_lock(sqlite3_file* f, int* out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xCheckReservedLock(r, out);
}

int io_file_control(sqlite3_file* f, int op, void* arg) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileControl(r, op, arg);
}

int io_sector_size(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSectorSize(r);
}

int io_device_characteristics(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xDeviceCharacteristics(r);
}

int io_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmMap(r, region, size, extend, out);
}

int io_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmLock(r, offset, n, flags);
}

void io_shm_barrier(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  r->pMethods->xShmBarrier(r);
}

int io_shm_unmap(sqlite3_file* f, int delete_flag) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmUnmap(r, delete_flag);
}

int io_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFetch(r, off, n, out);
}

int io_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnfetch(r, off, p);
}

// Version 3 (WAL's shared memory, memory-mapped I/O) like the unix VFS's files; a real file of
// an older version gets the matching table below.
sqlite3_io_methods make_methods(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = io_close;
  m.xRead = io_read;
  m.xWrite = io_write;
  m.xTruncate = io_truncate;
  m.xSync = io_sync;
  m.xFileSize = io_file_size;
  m.xLock = io_lock;
  m.xUnlock = io_unlock;
  m.xCheckReservedLock = io_check_reserved_lock;
  m.xFileControl = io_file_control;
  m.xSectorSize = io_sector_size;
  m.xDeviceCharacteristics = io_device_characteristics;
  if (version >= 2) {
    m.xShmMap = io_shm_map;
    m.xShmLock = io_shm_lock;
    m.xShmBarrier = io_shm_barrier;
    m.xShmUnmap = io_shm_unmap;
  }
  if (version >= 3) {
    m.xFetch = io_fetch;
    m.xUnfetch = io_unfetch;
  }
  return m;
}

const sqlite3_io_methods kMethods[3] = {make_methods(1), make_methods(2), make_methods(3)};

sqlite3_vfs* base_vfs = nullptr;  // the default VFS the shim wraps

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* ff = reinterpret_cast<FaultFile*>(f);
  ff->real = reinterpret_cast<sqlite3_file*>(ff + 1);
  std::memset(ff->real, 0, static_cast<size_t>(base_vfs->szOsFile));
  const int rc = base_vfs->xOpen(base_vfs, name, ff->real, flags, out_flags);
  if (ff->real->pMethods == nullptr) {
    ff->base.pMethods = nullptr;  // nothing to close
    return rc;
  }
  const int version = ff->real->pMethods->iVersion;
  ff->base.pMethods = &kMethods[version >= 3 ? 2 : version < 1 ? 0 : version - 1];
  return rc;
}

int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return base_vfs->xDelete(base_vfs, name, sync_dir);
}

int vfs_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return base_vfs->xAccess(base_vfs, name, flags, out);
}

int vfs_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return base_vfs->xFullPathname(base_vfs, name, n, out);
}

void* vfs_dl_open(sqlite3_vfs*, const char* name) {
  return base_vfs->xDlOpen(base_vfs, name);
}

void vfs_dl_error(sqlite3_vfs*, int n, char* out) {
  base_vfs->xDlError(base_vfs, n, out);
}

void (*vfs_dl_sym(sqlite3_vfs*, void* lib, const char* sym))(void) {
  return base_vfs->xDlSym(base_vfs, lib, sym);
}

void vfs_dl_close(sqlite3_vfs*, void* lib) {
  base_vfs->xDlClose(base_vfs, lib);
}

int vfs_randomness(sqlite3_vfs*, int n, char* out) {
  return base_vfs->xRandomness(base_vfs, n, out);
}

int vfs_sleep(sqlite3_vfs*, int us) {
  return base_vfs->xSleep(base_vfs, us);
}

int vfs_current_time(sqlite3_vfs*, double* out) {
  return base_vfs->xCurrentTime(base_vfs, out);
}

int vfs_get_last_error(sqlite3_vfs*, int n, char* out) {
  return base_vfs->xGetLastError ? base_vfs->xGetLastError(base_vfs, n, out) : 0;
}

int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

}  // namespace

FaultVfs::FaultVfs() {
  base_vfs = sqlite3_vfs_find(nullptr);
  if (base_vfs == nullptr || base_vfs->iVersion < 2) {
    throw std::runtime_error("fault VFS: no default SQLite VFS of version 2 or later");
  }
  static sqlite3_vfs vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + base_vfs->szOsFile;
  vfs.mxPathname = base_vfs->mxPathname;
  vfs.zName = kName;
  vfs.xOpen = vfs_open;
  vfs.xDelete = vfs_delete;
  vfs.xAccess = vfs_access;
  vfs.xFullPathname = vfs_full_pathname;
  vfs.xDlOpen = vfs_dl_open;
  vfs.xDlError = vfs_dl_error;
  vfs.xDlSym = vfs_dl_sym;
  vfs.xDlClose = vfs_dl_close;
  vfs.xRandomness = vfs_randomness;
  vfs.xSleep = vfs_sleep;
  vfs.xCurrentTime = vfs_current_time;
  vfs.xGetLastError = vfs_get_last_error;
  vfs.xCurrentTimeInt64 = vfs_current_time_int64;
  if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) {
    throw std::runtime_error("fault VFS: sqlite3_vfs_register failed");
  }
}

FaultVfs& FaultVfs::instance() {
  static FaultVfs vfs;
  return vfs;
}

void FaultVfs::arm(unsigned ops, int64_t n, Mode mode, Error error) {
  ops_.store(0);
  calls_.store(0);
  faults_.store(0);
  fail_at_.store(n);
  forever_.store(mode == Mode::kForever);
  full_.store(error == Error::kFull);
  ops_.store(ops);
}

void FaultVfs::disarm() {
  ops_.store(0);
  fail_at_.store(0);
}

int FaultVfs::on_call(Op op) {
  if ((ops_.load() & op) == 0) return 0;
  const int64_t n = ++calls_;
  const int64_t at = fail_at_.load();
  if (at == 0 || n < at || (n > at && !forever_.load())) return 0;
  ++faults_;
  if (full_.load()) return SQLITE_FULL;
  switch (op) {
    case kRead:
      return SQLITE_IOERR_READ;
    case kWrite:
      return SQLITE_IOERR_WRITE;
    case kTruncate:
      return SQLITE_IOERR_TRUNCATE;
    case kSync:
      return SQLITE_IOERR_FSYNC;
    case kFileSize:
      return SQLITE_IOERR_FSTAT;
  }
  return SQLITE_IOERR;
}

}  // namespace momentkv::test
