#include "core/gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/util/checked_math.h"

namespace momentkv {

const char* gguf_errc_name(GgufErrc c) {
  switch (c) {
    case GgufErrc::kIo:
      return "io";
    case GgufErrc::kBadMagic:
      return "bad-magic";
    case GgufErrc::kBadVersion:
      return "bad-version";
    case GgufErrc::kTruncated:
      return "truncated";
    case GgufErrc::kTooMany:
      return "too-many";
    case GgufErrc::kStringTooLong:
      return "string-too-long";
    case GgufErrc::kBadValueType:
      return "bad-value-type";
    case GgufErrc::kNestedArray:
      return "nested-array";
    case GgufErrc::kDuplicateKey:
      return "duplicate-key";
    case GgufErrc::kDuplicateTensor:
      return "duplicate-tensor";
    case GgufErrc::kBadAlignment:
      return "bad-alignment";
    case GgufErrc::kBadDims:
      return "bad-dims";
    case GgufErrc::kOverflow:
      return "overflow";
    case GgufErrc::kBadType:
      return "bad-type";
    case GgufErrc::kBadShape:
      return "bad-shape";
    case GgufErrc::kBadOffset:
      return "bad-offset";
    case GgufErrc::kOverlap:
      return "overlap";
    case GgufErrc::kWrongType:
      return "wrong-type";
    case GgufErrc::kMissing:
      return "missing";
  }
  return "unknown";
}

int64_t GgufTensorInfo::n_rows() const {
  int64_t r = 1;
  for (size_t d = 1; d < ne.size(); ++d) r *= ne[d];
  return r;
}

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
// Smallest possible encodings, used to bound counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // empty key, type, u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset

// Bounds-checked little-endian cursor over the file image.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& field) const {
    if (n > remaining()) {
      throw GgufError(GgufErrc::kTruncated, field + " needs " + std::to_string(n) +
                                                " bytes at offset " + std::to_string(pos_) +
                                                " but the file has " + std::to_string(remaining()) +
                                                " left");
    }
  }
  template <typename T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  const uint8_t* take(uint64_t n, const std::string& field) {
    need(n, field);
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  std::string_view string(const std::string& field, uint64_t cap) {
    const uint64_t len = read<uint64_t>(field + " length");
    if (len > cap) {
      throw GgufError(GgufErrc::kStringTooLong, field + " length " + std::to_string(len) +
                                                    " exceeds the limit " + std::to_string(cap));
    }
    const uint8_t* p = take(len, field);
    return {reinterpret_cast<const char*>(p), static_cast<size_t>(len)};
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

void read_scalar(Cursor& c, GgufType t, GgufValue& v, const std::string& field) {
  v.type = t;
  switch (t) {
    case GgufType::U8:
      v.u = c.read<uint8_t>(field);
      break;
    case GgufType::Bool: {
      const uint8_t b = c.read<uint8_t>(field);
      if (b > 1) {
        throw GgufError(GgufErrc::kWrongType, field + " is a bool with value " + std::to_string(b));
      }
      v.u = b;
      break;
    }
    case GgufType::I8:
      v.i = c.read<int8_t>(field);
      break;
    case GgufType::U16:
      v.u = c.read<uint16_t>(field);
      break;
    case GgufType::I16:
      v.i = c.read<int16_t>(field);
      break;
    case GgufType::U32:
      v.u = c.read<uint32_t>(field);
      break;
    case GgufType::I32:
      v.i = c.read<int32_t>(field);
      break;
    case GgufType::U64:
      v.u = c.read<uint64_t>(field);
      break;
    case GgufType::I64:
      v.i = c.read<int64_t>(field);
      break;
    case GgufType::F32:
      v.f = c.read<float>(field);
      break;
    case GgufType::F64:
      v.f = c.read<double>(field);
      break;
    default:
      break;
  }
}

GgufType checked_value_type(uint32_t raw, const std::string& field) {
  if (raw > static_cast<uint32_t>(GgufType::F64)) {
    throw GgufError(GgufErrc::kBadValueType,
                    field + " has unknown value type " + std::to_string(raw));
  }
  return static_cast<GgufType>(raw);
}

void read_value(Cursor& c, GgufType t, GgufValue& v, const std::string& field,
                const GgufLimits& lim) {
  if (t == GgufType::String) {
    v.type = t;
    v.str = c.string(field, lim.max_string_len);
    return;
  }
  if (t != GgufType::Array) {
    read_scalar(c, t, v, field);
    return;
  }
  v.type = GgufType::Array;
  const uint32_t raw_elem = c.read<uint32_t>(field + " element type");
  const GgufType elem = checked_value_type(raw_elem, field + " element");
  if (elem == GgufType::Array) {
    throw GgufError(GgufErrc::kNestedArray, field + " is an array of arrays (not supported)");
  }
  v.elem_type = elem;
  const uint64_t count = c.read<uint64_t>(field + " count");
  if (count > lim.max_array_len) {
    throw GgufError(GgufErrc::kTooMany, field + " count " + std::to_string(count) +
                                            " exceeds the limit " +
                                            std::to_string(lim.max_array_len));
  }
  v.count = count;
  if (elem == GgufType::String) {
    // Each string needs at least its 8-byte length: bound the count before reserving.
    if (count > c.remaining() / 8) {
      throw GgufError(GgufErrc::kTruncated, field + " count " + std::to_string(count) +
                                                " strings cannot fit in the " +
                                                std::to_string(c.remaining()) + " bytes left");
    }
    v.strs.reserve(count);
    for (uint64_t k = 0; k < count; ++k) {
      v.strs.push_back(c.string(field + "[" + std::to_string(k) + "]", lim.max_string_len));
    }
    return;
  }
  const auto bytes = checked_mul(count, gguf_scalar_size(elem));
  if (!bytes) {
    throw GgufError(GgufErrc::kOverflow,
                    field + " count " + std::to_string(count) + " x element size overflows");
  }
  v.raw = c.take(*bytes, field + " elements");
}

}  // namespace

GgufFile::GgufFile() = default;
GgufFile::GgufFile(GgufFile&& o) noexcept {
  *this = std::move(o);
}
GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  if (this == &o) return *this;
  if (map_) munmap(map_, size_);
  path_ = std::move(o.path_);
  base_ = o.base_;
  size_ = o.size_;
  map_ = o.map_;
  owned_ = std::move(o.owned_);
  if (!map_ && !owned_.empty()) base_ = owned_.data();
  version_ = o.version_;
  alignment_ = o.alignment_;
  data_offset_ = o.data_offset_;
  kvs_ = std::move(o.kvs_);
  kv_index_ = std::move(o.kv_index_);
  tensors_ = std::move(o.tensors_);
  tensor_index_ = std::move(o.tensor_index_);
  o.map_ = nullptr;
  o.base_ = nullptr;
  o.size_ = 0;
  return *this;
}
GgufFile::~GgufFile() {
  if (map_) munmap(map_, size_);
}

GgufFile GgufFile::open(const std::string& path, const GgufLimits& limits) {
  GgufFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw GgufError(GgufErrc::kIo, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw GgufError(GgufErrc::kIo, path + " is not a regular file");
  }
  f.size_ = static_cast<uint64_t>(st.st_size);
  if (f.size_ == 0) {
    ::close(fd);
    throw GgufError(GgufErrc::kTruncated, path + " is empty");
  }
  void* m = mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) {
    throw GgufError(GgufErrc::kIo, "cannot map " + path + ": " + std::strerror(errno));
  }
  f.map_ = m;
  f.base_ = static_cast<const uint8_t*>(m);
  f.parse(limits);  // on throw, ~GgufFile unmaps
  return f;
}

GgufFile GgufFile::from_bytes(std::vector<uint8_t> bytes, const GgufLimits& limits) {
  GgufFile f;
  f.path_ = "<memory>";
  f.owned_ = std::move(bytes);
  f.base_ = f.owned_.data();
  f.size_ = f.owned_.size();
  f.parse(limits);
  return f;
}

void GgufFile::parse(const GgufLimits& lim) {
  Cursor c(base_, size_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    throw GgufError(GgufErrc::kBadMagic, std::string("magic is ") + hex + ", expected \"GGUF\"");
  }
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    throw GgufError(GgufErrc::kBadVersion,
                    "version " + std::to_string(version_) + " (supported: 2, 3)");
  }
  const uint64_t n_tensors = c.read<uint64_t>("n_tensors");
  const uint64_t n_kv = c.read<uint64_t>("n_kv");
  if (n_tensors > lim.max_tensors || n_tensors > c.remaining() / kMinTensorInfoBytes) {
    throw GgufError(GgufErrc::kTooMany, "n_tensors " + std::to_string(n_tensors) +
                                            " exceeds the limit or the file size");
  }
  if (n_kv > lim.max_kv || n_kv > c.remaining() / kMinKvBytes) {
    throw GgufError(GgufErrc::kTooMany,
                    "n_kv " + std::to_string(n_kv) + " exceeds the limit or the file size");
  }

  kvs_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string field = "kv[" + std::to_string(k) + "]";
    std::string key(c.string(field + " key", lim.max_key_len));
    const GgufType t = checked_value_type(c.read<uint32_t>(field + " type"), "key '" + key + "'");
    GgufValue v;
    read_value(c, t, v, "key '" + key + "'", lim);
    if (!kv_index_.emplace(key, kvs_.size()).second) {
      throw GgufError(GgufErrc::kDuplicateKey, "key '" + key + "' appears twice");
    }
    kvs_.push_back({std::move(key), std::move(v)});
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::U32) {
      throw GgufError(GgufErrc::kBadAlignment, "general.alignment is stored as " +
                                                   gguf_type_name(static_cast<uint32_t>(a->type)) +
                                                   ", expected u32");
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > lim.max_alignment) {
      throw GgufError(GgufErrc::kBadAlignment,
                      "general.alignment " + std::to_string(a->u) +
                          " is not a power of two <= " + std::to_string(lim.max_alignment));
    }
    alignment_ = a->u;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const std::string field = "tensor[" + std::to_string(k) + "]";
    GgufTensorInfo t;
    t.name = std::string(c.string(field + " name", lim.max_key_len));
    const std::string tf = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.read<uint32_t>(tf + " n_dims");
    if (n_dims < 1 || n_dims > 4) {
      throw GgufError(GgufErrc::kBadDims,
                      tf + " n_dims " + std::to_string(n_dims) + " (must be 1..4)");
    }
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>(tf + " ne[" + std::to_string(d) + "]");
      if (ne < 1 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw GgufError(GgufErrc::kBadDims,
                        tf + " ne[" + std::to_string(d) + "] = " + std::to_string(ne));
      }
      const auto p = checked_mul(n_elems, ne);
      if (!p || *p > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw GgufError(GgufErrc::kOverflow, tf + " element count overflows at ne[" +
                                                 std::to_string(d) + "] = " + std::to_string(ne));
      }
      n_elems = *p;
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    const uint32_t type_id = c.read<uint32_t>(tf + " type");
    const auto info = type_info(type_id);
    if (!info) {
      throw GgufError(GgufErrc::kBadType, tf + " has unknown ggml type " + std::to_string(type_id));
    }
    t.type = static_cast<GgmlType>(type_id);
    if (static_cast<uint64_t>(t.ne[0]) % info->block_elems != 0) {
      throw GgufError(GgufErrc::kBadShape, tf + " row length ne[0] = " + std::to_string(t.ne[0]) +
                                               " is not a multiple of the " + info->name +
                                               " block size " + std::to_string(info->block_elems));
    }
    const auto bytes = checked_mul(n_elems / info->block_elems, info->block_bytes);
    if (!bytes) {
      throw GgufError(GgufErrc::kOverflow, tf + " byte size overflows (" + std::to_string(n_elems) +
                                               " elements of " + info->name + ")");
    }
    t.n_elements = n_elems;
    t.n_bytes = *bytes;
    t.offset = c.read<uint64_t>(tf + " offset");
    if (t.offset % alignment_ != 0) {
      throw GgufError(GgufErrc::kBadOffset, tf + " offset " + std::to_string(t.offset) +
                                                " is not a multiple of the alignment " +
                                                std::to_string(alignment_));
    }
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      throw GgufError(GgufErrc::kDuplicateTensor, tf + " appears twice");
    }
    tensors_.push_back(std::move(t));
  }

  const auto data_start = checked_align_up(c.pos(), alignment_);
  if (!data_start || (n_tensors > 0 && *data_start > size_)) {
    throw GgufError(GgufErrc::kTruncated, "data section starts past the end of the file (" +
                                              std::to_string(size_) + " bytes)");
  }
  data_offset_ = *data_start;
  const uint64_t data_size = n_tensors > 0 ? size_ - data_offset_ : 0;

  uint64_t total = 0;
  for (const auto& t : tensors_) {
    const auto end = checked_add(t.offset, t.n_bytes);
    if (!end || *end > data_size) {
      throw GgufError(GgufErrc::kBadOffset,
                      "tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                          std::to_string(t.n_bytes) + ") lies past the end of the data section (" +
                          std::to_string(data_size) + " bytes)");
    }
    const auto padded = checked_align_up(t.n_bytes, alignment_);
    const auto sum = padded ? checked_add(total, *padded) : std::nullopt;
    if (!sum) throw GgufError(GgufErrc::kOverflow, "total tensor size overflows");
    total = *sum;
  }
  std::vector<const GgufTensorInfo*> order;
  order.reserve(tensors_.size());
  for (const auto& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    if (order[k - 1]->offset + order[k - 1]->n_bytes > order[k]->offset) {
      throw GgufError(GgufErrc::kOverlap,
                      "tensors '" + order[k - 1]->name + "' and '" + order[k]->name + "' overlap");
    }
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

namespace {
[[noreturn]] void wrong_type(std::string_view key, const GgufValue& v, const char* expected) {
  std::string got = gguf_type_name(static_cast<uint32_t>(v.type));
  if (v.type == GgufType::Array) got += " of " + gguf_type_name(static_cast<uint32_t>(v.elem_type));
  throw GgufError(GgufErrc::kWrongType,
                  "key '" + std::string(key) + "' is " + got + ", expected " + expected);
}
template <typename T>
std::optional<T> get_int(const GgufFile& f, std::string_view key, const char* expected) {
  const GgufValue* v = f.find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::U64) {
    if (v->u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      throw GgufError(GgufErrc::kWrongType, "key '" + std::string(key) + "' value " +
                                                std::to_string(v->u) + " does not fit " + expected);
    }
    return static_cast<T>(v->u);
  }
  const auto i = v->as_int();
  if (!i || v->type == GgufType::Bool) wrong_type(key, *v, expected);
  if (*i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      (*i > 0 &&
       static_cast<uint64_t>(*i) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
    throw GgufError(GgufErrc::kWrongType, "key '" + std::string(key) + "' value " +
                                              std::to_string(*i) + " does not fit " + expected);
  }
  return static_cast<T>(*i);
}
}  // namespace

std::optional<uint32_t> GgufFile::get_u32(std::string_view key) const {
  return get_int<uint32_t>(*this, key, "u32");
}
std::optional<uint64_t> GgufFile::get_u64(std::string_view key) const {
  return get_int<uint64_t>(*this, key, "u64");
}
std::optional<int64_t> GgufFile::get_i64(std::string_view key) const {
  return get_int<int64_t>(*this, key, "i64");
}
std::optional<float> GgufFile::get_f32(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::F32 && v->type != GgufType::F64) wrong_type(key, *v, "f32");
  return static_cast<float>(v->f);
}
std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Bool) wrong_type(key, *v, "bool");
  return v->u != 0;
}
std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::String) wrong_type(key, *v, "string");
  return std::string(v->str);
}
std::optional<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Array || v->elem_type != GgufType::F32) wrong_type(key, *v, "f32 array");
  std::vector<float> out(v->count);
  if (v->count) std::memcpy(out.data(), v->raw, v->count * sizeof(float));
  return out;
}
std::optional<std::vector<int32_t>> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Array || v->elem_type != GgufType::I32) wrong_type(key, *v, "i32 array");
  std::vector<int32_t> out(v->count);
  if (v->count) std::memcpy(out.data(), v->raw, v->count * sizeof(int32_t));
  return out;
}
const std::vector<std::string_view>* GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufType::Array || v->elem_type != GgufType::String) {
    wrong_type(key, *v, "string array");
  }
  return &v->strs;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace momentkv
