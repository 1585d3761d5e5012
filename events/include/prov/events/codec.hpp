#pragma once
/// One description of a type's fields, three encodings.
///
/// A persisted struct lists its fields once, in a static member template:
///
///     template <class F, class Self>
///     static void fields(F& f, Self& x) { f("step", x.step); f("attempt", x.attempt); }
///
/// From that list come a compact binary encoding (inside the journal and the projections) and
/// JSON (at the edges: HTTP, Kafka, webhooks). Field order is the binary layout: append new
/// fields at the end and bump the type's version; never reorder or remove.
///
/// Binary format, per field type:
/// - unsigned integers: LEB128 varint; signed integers: zigzag then varint
/// - bool: one byte 0/1; double: 8 bytes IEEE-754 little-endian
/// - enum: its underlying value as varint
/// - std::string: varint length, bytes
/// - timestamp: microseconds since the epoch, zigzag varint
/// - std::vector<T>: varint count, elements; std::map<std::string, T>: varint count, (key, value)...
/// - std::optional<T>: one byte 0/1, then the value if present
/// - a struct with `fields`: its fields in order, no framing
///
/// Enums used in fields provide `enum_names(E) -> std::span<const std::string_view>` found by ADL
/// (index = underlying value); JSON writes the name.

#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "prov/core/clock.hpp"
#include "prov/core/error.hpp"
#include "prov/core/time_format.hpp"

namespace prov::events {

namespace detail {

struct field_probe {
  template <class T>
  void operator()(std::string_view, T&) {}
};

}  // namespace detail

/// A struct that lists its fields (see the file comment).
template <class T>
concept reflected = requires(detail::field_probe& f, T& x) { T::fields(f, x); };

/// An enum with a name table found by ADL.
template <class E>
concept named_enum = std::is_enum_v<E> && requires(E e) {
  { enum_names(e) } -> std::convertible_to<std::span<const std::string_view>>;
};

template <named_enum E>
std::string_view enum_name(E e) {
  const auto names = enum_names(e);
  const auto i = static_cast<std::size_t>(e);
  return i < names.size() ? names[i] : std::string_view{"unknown"};
}

template <named_enum E>
std::optional<E> enum_from_name(std::string_view name) {
  const auto names = enum_names(E{});
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) {
      return static_cast<E>(i);
    }
  }
  return std::nullopt;
}

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T>
struct is_string_map<std::map<std::string, T, std::less<>>> : std::true_type {};
template <class T>
struct is_string_map<std::map<std::string, T>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// ---------------------------------------------------------------------------------------------
// Binary

/// Appends the binary encoding of values to a string buffer (reused across calls by callers).
class binary_writer {
 public:
  explicit binary_writer(std::string& out) : _out(out) {}

  void varint(std::uint64_t v) {
    // Built on the stack and appended once: one capacity check instead of one per byte.
    char bytes[10];
    std::size_t n = 0;
    while (v >= 0x80) {
      bytes[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    bytes[n++] = static_cast<char>(v);
    _out.append(bytes, n);
  }

  void zigzag(std::int64_t v) {
    varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }

  template <class T>
  void operator()(std::string_view, const T& v) {
    write(v);
  }

  template <class T>
  void write(const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      _out.push_back(v ? 1 : 0);
    } else if constexpr (std::is_enum_v<T>) {
      varint(static_cast<std::uint64_t>(v));
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      zigzag(static_cast<std::int64_t>(v));
    } else if constexpr (std::is_integral_v<T>) {
      varint(static_cast<std::uint64_t>(v));
    } else if constexpr (std::is_same_v<T, double>) {
      const auto bits = std::bit_cast<std::uint64_t>(v);
      char bytes[8];
      for (int i = 0; i < 8; ++i) {
        bytes[i] = static_cast<char>(bits >> (8 * i));
      }
      _out.append(bytes, sizeof bytes);
    } else if constexpr (std::is_same_v<T, std::string>) {
      varint(v.size());
      _out.append(v);
    } else if constexpr (std::is_same_v<T, timestamp>) {
      zigzag(v.time_since_epoch().count());
    } else if constexpr (is_vector<T>::value) {
      varint(v.size());
      for (const auto& e : v) {
        write(e);
      }
    } else if constexpr (is_string_map<T>::value) {
      varint(v.size());
      for (const auto& [k, e] : v) {
        write(k);
        write(e);
      }
    } else if constexpr (is_optional<T>::value) {
      _out.push_back(v ? 1 : 0);
      if (v) {
        write(*v);
      }
    } else {
      static_assert(reflected<T>, "type has no binary encoding");
      T::fields(*this, v);
    }
  }

 private:
  std::string& _out;
};

/// Reads the binary encoding back. Bounds-checked: malformed input sets `failed()` and
/// yields default values, never reads past the end.
class binary_reader {
 public:
  explicit binary_reader(std::string_view in) : _in(in) {}

  bool failed() const noexcept { return _failed; }
  bool at_end() const noexcept { return _pos == _in.size(); }
  std::string_view rest() const noexcept { return _in.substr(_pos); }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (_pos >= _in.size()) {
        _failed = true;
        return 0;
      }
      const auto b = static_cast<unsigned char>(_in[_pos++]);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return v;
      }
    }
    _failed = true;
    return 0;
  }

  std::int64_t zigzag() {
    const auto u = varint();
    return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }

  std::uint8_t byte() {
    if (_pos >= _in.size()) {
      _failed = true;
      return 0;
    }
    return static_cast<std::uint8_t>(_in[_pos++]);
  }

  template <class T>
  void operator()(std::string_view, T& v) {
    read(v);
  }

  template <class T>
  void read(T& v) {
    if (_failed) {
      return;
    }
    if constexpr (std::is_same_v<T, bool>) {
      const auto b = byte();
      _failed = _failed || b > 1;
      v = b == 1;
    } else if constexpr (std::is_enum_v<T>) {
      v = static_cast<T>(varint());
      if constexpr (named_enum<T>) {
        _failed = _failed || static_cast<std::size_t>(v) >= enum_names(v).size();
      }
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      v = static_cast<T>(zigzag());
    } else if constexpr (std::is_integral_v<T>) {
      v = static_cast<T>(varint());
    } else if constexpr (std::is_same_v<T, double>) {
      std::uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) {
        bits |= static_cast<std::uint64_t>(byte()) << (8 * i);
      }
      v = std::bit_cast<double>(bits);
    } else if constexpr (std::is_same_v<T, std::string>) {
      const auto n = varint();
      if (_failed || n > _in.size() - _pos) {
        _failed = true;
        return;
      }
      v.assign(_in.data() + _pos, n);
      _pos += n;
    } else if constexpr (std::is_same_v<T, timestamp>) {
      v = timestamp{std::chrono::microseconds{zigzag()}};
    } else if constexpr (is_vector<T>::value) {
      const auto n = varint();
      if (_failed || n > _in.size() - _pos) {  // every element takes at least one byte
        _failed = true;
        return;
      }
      v.clear();
      v.resize(n);
      for (auto& e : v) {
        read(e);
      }
    } else if constexpr (is_string_map<T>::value) {
      const auto n = varint();
      if (_failed || n > _in.size() - _pos) {
        _failed = true;
        return;
      }
      v.clear();
      for (std::uint64_t i = 0; i < n && !_failed; ++i) {
        std::string k;
        typename T::mapped_type e{};
        read(k);
        read(e);
        v.insert_or_assign(std::move(k), std::move(e));
      }
    } else if constexpr (is_optional<T>::value) {
      const auto present = byte();
      if (present > 1) {
        _failed = true;
      } else if (present == 1) {
        v.emplace();
        read(*v);
      } else {
        v.reset();
      }
    } else {
      static_assert(reflected<T>, "type has no binary encoding");
      T::fields(*this, v);
    }
  }

 private:
  std::string_view _in;
  std::size_t _pos = 0;
  bool _failed = false;
};

/// Appends the binary encoding of `v` to `out`.
template <class T>
void encode_binary(const T& v, std::string& out) {
  binary_writer w{out};
  w.write(v);
}

template <class T>
std::string encode_binary(const T& v) {
  std::string out;
  encode_binary(v, out);
  return out;
}

/// Decodes a whole buffer; trailing bytes or truncation are `errc::corrupt`.
template <class T>
result<T> decode_binary(std::string_view in) {
  T v{};
  binary_reader r{in};
  r.read(v);
  if (r.failed() || !r.at_end()) {
    return make_error(errc::corrupt, "malformed binary encoding");
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// JSON

template <class T>
nlohmann::json to_json_value(const T& v);

class json_writer {
 public:
  explicit json_writer(nlohmann::json& obj) : _obj(obj) {}

  template <class T>
  void operator()(std::string_view name, const T& v) {
    if constexpr (is_optional<T>::value) {
      if (!v) {
        return;  // absent optionals are omitted
      }
    }
    _obj[std::string{name}] = to_json_value(v);
  }

 private:
  nlohmann::json& _obj;
};

/// JSON for one value: structs become objects keyed by field name, enums their names,
/// timestamps RFC 3339 with microseconds.
template <class T>
nlohmann::json to_json_value(const T& v) {
  if constexpr (std::is_same_v<T, bool> || std::is_integral_v<T> || std::is_same_v<T, double> ||
                std::is_same_v<T, std::string>) {
    return nlohmann::json(v);
  } else if constexpr (named_enum<T>) {
    return nlohmann::json(std::string{enum_name(v)});
  } else if constexpr (std::is_same_v<T, timestamp>) {
    return nlohmann::json(format_rfc3339(v, 6));
  } else if constexpr (is_vector<T>::value) {
    auto arr = nlohmann::json::array();
    for (const auto& e : v) {
      arr.push_back(to_json_value(e));
    }
    return arr;
  } else if constexpr (is_string_map<T>::value) {
    auto obj = nlohmann::json::object();
    for (const auto& [k, e] : v) {
      obj[k] = to_json_value(e);
    }
    return obj;
  } else if constexpr (is_optional<T>::value) {
    return v ? to_json_value(*v) : nlohmann::json(nullptr);
  } else {
    static_assert(reflected<T>, "type has no JSON encoding");
    auto obj = nlohmann::json::object();
    json_writer w{obj};
    T::fields(w, v);
    return obj;
  }
}

/// Reads JSON written by `to_json_value`. Missing fields keep their defaults; a present field
/// of the wrong type is an error naming its path.
class json_reader {
 public:
  json_reader(const nlohmann::json& obj, std::string path) : _obj(obj), _path(std::move(path)) {}

  const std::optional<error>& failure() const noexcept { return _error; }

  template <class T>
  void operator()(std::string_view name, T& v) {
    if (_error) {
      return;
    }
    const auto it = _obj.find(std::string{name});
    if (it == _obj.end() || it->is_null()) {
      return;
    }
    read(*it, v, _path + "." + std::string{name});
  }

  template <class T>
  void read(const nlohmann::json& j, T& v, const std::string& path) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!j.is_boolean()) {
        return fail(path, "a boolean");
      }
      v = j.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!j.is_number_integer()) {
        return fail(path, "an integer");
      }
      v = j.get<T>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!j.is_number()) {
        return fail(path, "a number");
      }
      v = j.get<double>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!j.is_string()) {
        return fail(path, "a string");
      }
      v = j.get<std::string>();
    } else if constexpr (named_enum<T>) {
      if (!j.is_string()) {
        return fail(path, "a string");
      }
      const auto e = enum_from_name<T>(j.get_ref<const std::string&>());
      if (!e) {
        return fail(path, "a known name");
      }
      v = *e;
    } else if constexpr (std::is_same_v<T, timestamp>) {
      const auto t = j.is_string() ? parse_rfc3339(j.get_ref<const std::string&>()) : std::nullopt;
      if (!t) {
        return fail(path, "an RFC 3339 time");
      }
      v = *t;
    } else if constexpr (is_vector<T>::value) {
      if (!j.is_array()) {
        return fail(path, "an array");
      }
      v.clear();
      v.resize(j.size());
      for (std::size_t i = 0; i < j.size() && !_error; ++i) {
        read(j[i], v[i], path + "[" + std::to_string(i) + "]");
      }
    } else if constexpr (is_string_map<T>::value) {
      if (!j.is_object()) {
        return fail(path, "an object");
      }
      v.clear();
      for (auto it = j.begin(); it != j.end() && !_error; ++it) {
        typename T::mapped_type e{};
        read(it.value(), e, path + "." + it.key());
        v.insert_or_assign(it.key(), std::move(e));
      }
    } else if constexpr (is_optional<T>::value) {
      v.emplace();
      read(j, *v, path);
    } else {
      static_assert(reflected<T>, "type has no JSON decoding");
      if (!j.is_object()) {
        return fail(path, "an object");
      }
      json_reader nested{j, path};
      T::fields(nested, v);
      if (nested._error) {
        _error = std::move(nested._error);
      }
    }
  }

 private:
  void fail(const std::string& path, std::string_view expected) {
    _error = make_error(errc::invalid_argument, path + " must be " + std::string{expected});
  }

  const nlohmann::json& _obj;
  std::string _path;
  std::optional<error> _error;
};

template <class T>
result<T> from_json_value(const nlohmann::json& j) {
  T v{};
  static const nlohmann::json empty = nlohmann::json::object();
  json_reader r{empty, "$"};
  r.read(j, v, "$");
  if (r.failure()) {
    return *r.failure();
  }
  return v;
}

}  // namespace prov::events
