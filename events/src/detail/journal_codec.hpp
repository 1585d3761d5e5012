#pragma once
/// Byte-level encodings of the journal's persisted data (format 4). Changing any of these
/// changes the on-disk format: add a new format version instead of editing.
///
/// - log key      : the position of the record's first event, 8-byte big-endian (so RocksDB's
///                  bytewise order is log order); a record holds consecutive positions, and
///                  the next record starts right after its last one
/// - stream key   : stream id, 0x00, sequence as 8-byte big-endian (stream ids never contain 0x00,
///                  so `<stream>\0` is a prefix no other stream shares)
/// - stream value : the position of the event with the key's sequence, 8-byte big-endian;
///                  since format 2 an entry may stand for a run of events one append added
///                  to the stream (consecutive sequences at consecutive positions), and then
///                  the run's event count follows, 8-byte big-endian (format 1 wrote one entry
///                  per event, which reads as runs of one); since format 4 an entry may stand
///                  for several runs (the appends to the stream between two index
///                  checkpoints): then each run's position and count, 8-byte big-endian each,
///                  the first run at the key's sequence and each next one going on from it
/// - meta `journal/indexed`: the position up to which every event is in the stream index,
///                  decimal (format 4: later events are indexed in memory until the next
///                  checkpoint, and found again in the log on open)
/// - log record, one event (formats 1 and 2 wrote one per event; still read):
///                  u8 1 | varint stream length | stream bytes | varint sequence |
///                  varint time (microseconds since epoch, two's complement as u64) |
///                  varint type_id | u8 version | payload bytes (the rest of the value)
/// - log record of runs (format 3 writes these: one per append at first, now one per group
///                  commit's consecutive appends, up to a size, which any format 3 reader
///                  reads the same way):
///                  u8 2 | varint event count | varint time | then per run, in position
///                  order: varint stream length | stream bytes | varint first sequence |
///                  varint events | per event: varint type_id | u8 version |
///                  varint payload length | payload bytes
///
/// Varints are unsigned LEB128 (7 bits per byte, least significant group first, high bit set
/// on every byte but the last), at most 10 bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/be64.hpp"
#include "prov/core/error.hpp"
#include "prov/events/journal.hpp"

namespace prov::events::detail {

/// The column family of the global log (`rocks_store.hpp`).
inline constexpr std::string_view log_family_name = "log";

inline constexpr std::uint8_t event_record_format = 1;
inline constexpr std::uint8_t append_record_format = 2;
inline constexpr char stream_key_separator = '\0';

using prov::append_be64;
using prov::be64_size;
using prov::decode_be64;
using prov::read_be64;

inline void append_varint(std::string& out, std::uint64_t v) {
  char bytes[10];
  std::size_t n = 0;
  while (v >= 0x80U) {
    bytes[n++] = static_cast<char>((v & 0x7fU) | 0x80U);
    v >>= 7U;
  }
  bytes[n++] = static_cast<char>(v);
  out.append(bytes, n);
}

/// Reads a varint from the front of `in` and advances it; nullopt if truncated or too long.
inline std::optional<std::uint64_t> read_varint(std::string_view& in) noexcept {
  std::uint64_t v = 0;
  for (unsigned shift = 0, i = 0; i < 10 && i < in.size(); ++i, shift += 7) {
    const auto byte = static_cast<std::uint8_t>(in[i]);
    if (i == 9 && byte > 1) {
      return std::nullopt;  // more than 64 bits
    }
    v |= static_cast<std::uint64_t>(byte & 0x7fU) << shift;
    if ((byte & 0x80U) == 0) {
      in.remove_prefix(i + 1);
      return v;
    }
  }
  return std::nullopt;
}

/// `out` = log key of `position`.
inline void make_log_key(std::string& out, std::uint64_t position) {
  out.clear();
  append_be64(out, position);
}

/// `out` = `<stream>\0` (the prefix of every index key of the stream).
inline void make_stream_prefix(std::string& out, std::string_view stream) {
  out.assign(stream);
  out.push_back(stream_key_separator);
}

/// `out` = `<stream>\0<sequence BE>`.
inline void make_stream_key(std::string& out, std::string_view stream, std::uint64_t sequence) {
  make_stream_prefix(out, stream);
  append_be64(out, sequence);
}

/// `out` = the first key after every key of the stream (`<stream>\x01`): an exclusive upper bound.
inline void make_stream_end(std::string& out, std::string_view stream) {
  out.assign(stream);
  out.push_back('\x01');
}

/// The sequence of an index key of `stream` (whose prefix the caller has checked), or nullopt.
inline std::optional<std::uint64_t> stream_key_sequence(std::string_view key, std::string_view stream) {
  if (key.size() != stream.size() + 1 + be64_size) {
    return std::nullopt;
  }
  return read_be64(key.data() + stream.size() + 1);
}

/// True if `key` is an index key of `stream` (starts with `<stream>\0`).
inline bool is_stream_key(std::string_view key, std::string_view stream) noexcept {
  return key.size() > stream.size() && key.substr(0, stream.size()) == stream &&
         key[stream.size()] == stream_key_separator;
}

/// `out` = the stream value of a run of `count` events from `position`.
inline void make_stream_value(std::string& out, std::uint64_t position, std::uint64_t count) {
  out.clear();
  append_be64(out, position);
  if (count != 1) {
    append_be64(out, count);
  }
}

/// Events of a stream at consecutive positions (its sequences are consecutive too).
struct position_run {
  std::uint64_t position = 0;
  std::uint64_t count = 0;
};

/// `out` = the stream value of `runs` (format 4: more than one run is each run's position and
/// count; one run is written as `make_stream_value` writes it).
inline void make_stream_value(std::string& out, const std::vector<position_run>& runs) {
  if (runs.size() == 1) {
    make_stream_value(out, runs.front().position, runs.front().count);
    return;
  }
  out.clear();
  for (const auto& r : runs) {
    append_be64(out, r.position);
    append_be64(out, r.count);
  }
}

/// One run of a stream index entry: events `first_sequence` .. `first_sequence + count - 1` of
/// the stream are at positions `position` .. `position + count - 1`.
struct stream_run {
  std::uint64_t first_sequence = 0;
  std::uint64_t position = 0;
  std::uint64_t count = 0;
};

/// Decodes an index entry of `stream` (whose prefix the caller has checked) into its runs,
/// which `out` is set to (the first at the key's sequence, each next one going on from the
/// one before, at growing positions); false if malformed.
inline bool decode_stream_runs(std::string_view key, std::string_view value, std::string_view stream,
                               std::vector<stream_run>& out) {
  out.clear();
  const auto sequence = stream_key_sequence(key, stream);
  if (!sequence || *sequence == 0) {
    return false;
  }
  if (value.size() == be64_size) {
    out.push_back(stream_run{*sequence, read_be64(value.data()), 1});
    return out.back().position != 0;
  }
  if (value.empty() || value.size() % (2 * be64_size) != 0) {
    return false;
  }
  auto next = *sequence;
  std::uint64_t after = 1;  // the lowest position the next run may start at
  for (std::size_t at = 0; at < value.size(); at += 2 * be64_size) {
    const stream_run run{next, read_be64(value.data() + at), read_be64(value.data() + at + be64_size)};
    if (run.count == 0 || run.position < after) {
      return false;
    }
    out.push_back(run);
    next += run.count;
    after = run.position + run.count;
  }
  return true;
}

/// Decodes a one-event log record into `out` (every field but `position`). Reuses `out`'s
/// buffers.
inline status decode_record(std::string_view in, stored_event& out) {
  const auto bad = [](std::string_view what) {
    return make_error(errc::corrupt, "journal record: " + std::string(what));
  };
  if (in.empty()) {
    return bad("empty value");
  }
  if (static_cast<std::uint8_t>(in.front()) != event_record_format) {
    return bad("unknown record format " + std::to_string(static_cast<std::uint8_t>(in.front())));
  }
  in.remove_prefix(1);
  const auto stream_size = read_varint(in);
  if (!stream_size || *stream_size > in.size()) {
    return bad("truncated stream id");
  }
  out.stream.assign(in.substr(0, *stream_size));
  in.remove_prefix(*stream_size);
  const auto sequence = read_varint(in);
  const auto time = sequence ? read_varint(in) : std::nullopt;
  const auto type_id = time ? read_varint(in) : std::nullopt;
  if (!type_id || in.empty()) {
    return bad("truncated header");
  }
  if (*type_id > 0xffffU) {
    return bad("type id out of range");
  }
  out.sequence = *sequence;
  out.time = timestamp{std::chrono::microseconds{static_cast<std::int64_t>(*time)}};
  out.type_id = static_cast<std::uint16_t>(*type_id);
  out.version = static_cast<std::uint8_t>(in.front());
  in.remove_prefix(1);
  out.payload.assign(in);
  return {};
}

/// The most bytes a record's header takes: u8 format and two varints.
inline constexpr std::size_t record_header_room = 1 + 10 + 10;

/// Starts a log record in `out`: room for its header, which `seal_record` writes once the
/// record's event count is known; `add_record_run` adds the runs after it.
inline void open_record(std::string& out) { out.assign(record_header_room, '\0'); }

/// Writes the header of the record in `out` (started by `open_record`: `events` events
/// committed at `time`) right before its first run, and returns the record: from its header
/// to its end.
inline std::string_view seal_record(std::string& out, std::uint64_t events, timestamp time) {
  std::string header;
  header.reserve(record_header_room);
  header.push_back(static_cast<char>(append_record_format));
  append_varint(header, events);
  append_varint(header, static_cast<std::uint64_t>(time.time_since_epoch().count()));
  const auto start = record_header_room - header.size();
  out.replace(start, header.size(), header);
  return std::string_view{out}.substr(start);
}

/// Adds one stream's events (from sequence `first_sequence`) to a record.
inline void add_record_run(std::string& out, std::string_view stream, std::uint64_t first_sequence,
                           const std::vector<event_record>& events) {
  append_varint(out, stream.size());
  out.append(stream);
  append_varint(out, first_sequence);
  append_varint(out, events.size());
  for (const auto& event : events) {
    append_varint(out, event.type_id);
    out.push_back(static_cast<char>(event.version));
    append_varint(out, event.payload.size());
    out.append(event.payload);
  }
}

/// Walks the events of one log record of either kind, in position order.
class record_reader {
 public:
  /// Checks the record stored at log key `first_position` and positions before its first
  /// event. Errors (here and from `next`) name the log position they are about.
  status open(std::string_view value, std::uint64_t first_position) {
    _in = value;
    _first = first_position;
    _next = first_position;
    _count = 1;
    _run_left = 0;
    _whole = {};
    if (_in.empty()) {
      return bad(first_position, "empty value");
    }
    const auto format = static_cast<std::uint8_t>(_in.front());
    if (format == event_record_format) {
      _whole = value;
      return {};
    }
    if (format != append_record_format) {
      return bad(first_position, "unknown record format " + std::to_string(format));
    }
    _in.remove_prefix(1);
    const auto count = read_varint(_in);
    const auto time = count ? read_varint(_in) : std::nullopt;
    if (!time) {
      return bad(first_position, "truncated header");
    }
    if (*count == 0 || *count > _in.size()) {  // every event takes at least two bytes
      return bad(first_position, "event count " + std::to_string(*count) + " out of range");
    }
    _count = *count;
    _time = timestamp{std::chrono::microseconds{static_cast<std::int64_t>(*time)}};
    return {};
  }

  std::uint64_t first_position() const noexcept { return _first; }
  std::uint64_t last_position() const noexcept { return _first + _count - 1; }
  /// The position of the event `next` reads.
  std::uint64_t next_position() const noexcept { return _next; }
  /// Whether every event has been read.
  bool done() const noexcept { return _next > last_position(); }

  /// Decodes the next event into `out` (every field, its position included); with `keep`
  /// false only steps over it (`out` then holds only the position). Call only if not `done`.
  status next(stored_event& out, bool keep = true) {
    const auto at = _next;
    out.position = at;
    if (!_whole.empty()) {
      ++_next;
      if (!keep) {
        return {};
      }
      if (auto decoded = decode_record(_whole, out); !decoded) {
        return make_error(errc::corrupt, "log position " + std::to_string(at) + ": " + std::move(decoded).err().message);
      }
      return {};
    }
    if (_run_left == 0) {
      const auto stream_size = read_varint(_in);
      if (!stream_size || *stream_size > _in.size()) {
        return bad(at, "truncated stream id");
      }
      _stream = _in.substr(0, *stream_size);
      _in.remove_prefix(*stream_size);
      const auto sequence = read_varint(_in);
      const auto events = sequence ? read_varint(_in) : std::nullopt;
      if (!events || *events == 0 || *events > last_position() - _next + 1) {
        return bad(at, "bad run header");
      }
      _sequence = *sequence;
      _run_left = *events;
    }
    const auto type_id = read_varint(_in);
    if (!type_id || _in.empty()) {
      return bad(at, "truncated event header");
    }
    if (*type_id > 0xffffU) {
      return bad(at, "type id out of range");
    }
    const auto version = static_cast<std::uint8_t>(_in.front());
    _in.remove_prefix(1);
    const auto size = read_varint(_in);
    if (!size || *size > _in.size()) {
      return bad(at, "truncated payload");
    }
    if (keep) {
      out.stream.assign(_stream);
      out.sequence = _sequence;
      out.time = _time;
      out.type_id = static_cast<std::uint16_t>(*type_id);
      out.version = version;
      out.payload.assign(_in.substr(0, *size));
    }
    _in.remove_prefix(*size);
    ++_sequence;
    --_run_left;
    ++_next;
    if (done() && (_run_left != 0 || !_in.empty())) {
      return bad(at, "trailing bytes after the last event");
    }
    return {};
  }

 private:
  static error bad(std::uint64_t position, std::string_view what) {
    return make_error(errc::corrupt, "log position " + std::to_string(position) + ": journal record: " + std::string(what));
  }

  std::string_view _in;     ///< what is left of an append record
  std::string_view _whole;  ///< a one-event record
  std::string_view _stream;
  std::uint64_t _first = 0;
  std::uint64_t _count = 0;
  std::uint64_t _next = 0;      ///< the position of the next event
  std::uint64_t _sequence = 0;  ///< the next event's sequence in `_stream`
  std::uint64_t _run_left = 0;  ///< events of `_stream` still to read
  timestamp _time{};
};

}  // namespace prov::events::detail
