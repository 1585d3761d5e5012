#include "prov/gateway/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "prov/core/log.hpp"
#include "prov/core/thread_name.hpp"

namespace prov::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint32_t header_limit_bytes = 16 * 1024;
/// After an error response the rest of the request is read and discarded (up to this much, for
/// at most `linger_timeout`) so that closing does not reset the connection before the client
/// has read the response.
constexpr std::size_t linger_max_bytes = 64 * 1024 * 1024;
constexpr std::chrono::seconds linger_timeout{5};
constexpr std::chrono::milliseconds accept_retry_delay{50};

bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return c - 'A' + 10;
}

/// Percent-decodes `in` into `out`; false if a '%' is not followed by two hex digits.
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size() || !is_hex(in[i + 1]) || !is_hex(in[i + 2])) {
        return false;
      }
      out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

/// Fills `path` and `query` from the origin-form target; false if it is not decodable.
bool split_target(std::string_view target, http_request& req) {
  if (target == "*") {
    req.path = "*";
    return true;
  }
  if (target.empty() || target.front() != '/') {
    return false;
  }
  const auto qpos = target.find('?');
  if (!percent_decode(target.substr(0, qpos), false, req.path)) {
    return false;
  }
  if (req.path.find('\0') != std::string::npos) {
    return false;
  }
  if (qpos == std::string_view::npos) {
    return true;
  }
  std::string_view rest = target.substr(qpos + 1);
  std::string key;
  std::string value;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    const auto eq = pair.find('=');
    const std::string_view raw_value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (!percent_decode(pair.substr(0, eq), true, key) || !percent_decode(raw_value, true, value)) {
      return false;
    }
    req.query.emplace(std::move(key), std::move(value));
  }
  return true;
}

/// Beast 1.74 uses boost::string_view; the rest of the code base uses std::string_view.
std::string_view to_std(beast::string_view s) noexcept {
  return {s.data(), s.size()};
}

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = ascii_lower(c);
  }
  return out;
}

/// Header names the server writes itself; a handler cannot set them.
bool is_reserved_header(std::string_view name) noexcept {
  for (std::string_view r : {"content-length", "transfer-encoding", "connection", "server", "date", "content-type"}) {
    if (iequals(name, r)) {
      return true;
    }
  }
  return false;
}

bool is_header_safe(std::string_view name, std::string_view value) noexcept {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (c <= ' ' || c == ':' || c == 127) {
      return false;
    }
  }
  return value.find_first_of("\r\n") == std::string_view::npos;
}

/// IMF-fixdate of the current second ("Sun, 06 Nov 1994 08:49:37 GMT"), cached per thread.
std::string_view http_date() {
  thread_local std::time_t cached_second = -1;
  thread_local std::array<char, 32> text{};
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    static constexpr std::string_view days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    gmtime_r(&now, &tm);
    const int n = std::snprintf(text.data(), text.size(), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                                days[tm.tm_wday % 7].data(), tm.tm_mday, months[tm.tm_mon % 12].data(),
                                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    length = n > 0 ? std::min<std::size_t>(static_cast<std::size_t>(n), text.size() - 1) : 0;
    cached_second = now;
  }
  return {text.data(), length};
}

void append_number(std::string& out, std::size_t n) {
  std::array<char, 24> digits{};
  const auto r = std::to_chars(digits.data(), digits.data() + digits.size(), n);
  out.append(digits.data(), r.ptr);
}

const beast::error_category& http_category() {
  return bhttp::make_error_code(bhttp::error::end_of_stream).category();
}

/// OpenSSL's reason for the last failure on this thread (its error queue emptied), or
/// `fallback` when it left none.
std::string openssl_reason(std::string fallback) {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    reason = text;  // the last one is the most specific
  }
  return reason.empty() ? fallback : reason;
}

/// The error of a private key that is not the certificate's.
error mismatch(const http_server_options& o) {
  return make_error(errc::invalid_argument, "the TLS private key in " + o.tls_key_file +
                                                " does not belong to the certificate in " + o.tls_cert_file);
}

/// The server side of TLS from the options' PEM files: TLS 1.2 (or the options' minimum) or
/// later, the chain and its key, checked to belong together. None when the options ask for
/// plain HTTP.
result<std::optional<net::ssl::context>> load_tls(const http_server_options& o) {
  if (o.tls_cert_file.empty() && o.tls_key_file.empty()) {
    return std::optional<net::ssl::context>{};
  }
  if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
    return make_error(errc::invalid_argument, "TLS needs both a certificate chain file and a private key file");
  }
  ERR_clear_error();
  net::ssl::context ctx{net::ssl::context::tls_server};
  beast::error_code ec;
  ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::single_dh_use, ec);
  if (ec) {
    return make_error(errc::invalid_argument, "cannot set up TLS: " + openssl_reason(ec.message()));
  }
  // The oldest version accepted (SSL 3, TLS 1.0 and 1.1 never are): one setting, not a flag
  // per version refused.
  const int oldest = o.tls_min_version == tls_version::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), oldest) != 1) {
    ERR_clear_error();
    return make_error(errc::invalid_argument, "cannot set up TLS: this OpenSSL refuses the minimum version");
  }
  ctx.use_certificate_chain_file(o.tls_cert_file, ec);
  if (ec) {
    return make_error(errc::invalid_argument, "cannot load the TLS certificate chain from " + o.tls_cert_file + ": " +
                                                  openssl_reason(ec.message()));
  }
  ctx.use_private_key_file(o.tls_key_file, net::ssl::context::pem, ec);
  if (ec) {
    // OpenSSL checks the key against the certificate as it loads it.
    const auto reason = openssl_reason(ec.message());
    if (reason.find("key values mismatch") != std::string::npos) {
      return mismatch(o);
    }
    return make_error(errc::invalid_argument, "cannot load the TLS private key from " + o.tls_key_file + ": " + reason);
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    ERR_clear_error();
    return mismatch(o);
  }
  return std::optional<net::ssl::context>{std::move(ctx)};
}

}  // namespace

std::optional<tls_version> parse_tls_version(std::string_view text) noexcept {
  if (text == "1.2") {
    return tls_version::v1_2;
  }
  if (text == "1.3") {
    return tls_version::v1_3;
  }
  return std::nullopt;
}

status check_tls(const http_server_options& options) {
  auto tls = load_tls(options);
  if (!tls) {
    return std::move(tls).err();
  }
  return {};
}

namespace detail {

/// Lets responders reach connections from foreign threads, and only while the server runs:
/// `stop()` closes it under the exclusive lock, so no post can race the I/O loop's shutdown.
/// Shared by every responder, so it outlives the server if the application keeps one.
struct responder_gate {
  std::shared_mutex mutex;
  bool open = true;
};

class connection;

struct server_core {
  server_core(http_server_options o, http_handler h)
      : options(std::move(o)),
        handler(std::move(h)),
        ioc(static_cast<int>(std::max(1u, options.threads))),
        acceptor(ioc),
        accept_retry(ioc) {}

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void forget(connection* c);

  http_server_options options;
  http_handler handler;
  std::shared_ptr<responder_gate> gate = std::make_shared<responder_gate>();
  /// The TLS context of new connections (each keeps the one it was accepted with): set by
  /// `start()` when the options ask for TLS, replaced by `reload_tls()`.
  std::shared_ptr<net::ssl::context> tls;
  std::mutex tls_mutex;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  net::steady_timer accept_retry;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};

  std::mutex lifecycle_mutex;  ///< serializes start() and stop()
  bool started = false;
  bool stopped = false;

  std::mutex connections_mutex;
  /// Owns every open connection, including those waiting for an asynchronous response (no I/O
  /// operation holds them then). A connection removes itself when it closes.
  std::unordered_map<connection*, std::shared_ptr<connection>> connections;
};

/// What the server's table and the responders know of a connection, plain or TLS.
class connection {
 public:
  virtual ~connection() = default;
  virtual void start() = 0;
  /// Hands a handler's response (or, with none, the order to close) to the connection's strand.
  virtual void post_reply(std::optional<http_response> r) = 0;
  /// For `stop()`, with no I/O thread running: closes without touching the server's table.
  virtual void close_for_stop() = 0;
};

/// The state behind every copy of one request's responder.
struct reply_slot {
  reply_slot(std::weak_ptr<connection> c, std::shared_ptr<responder_gate> g) : conn(std::move(c)), gate(std::move(g)) {}
  reply_slot(const reply_slot&) = delete;
  reply_slot& operator=(const reply_slot&) = delete;

  ~reply_slot() {
    if (!used.exchange(true)) {
      send(std::nullopt);
    }
  }

  void deliver(http_response r) noexcept {
    if (!used.exchange(true)) {
      send(std::move(r));
    }
  }

  /// Hands the response (or, if none, the order to close) to the connection, if the server
  /// still runs and the connection is still open.
  void send(std::optional<http_response> r) noexcept {
    try {
      std::shared_lock lock(gate->mutex);
      if (!gate->open) {
        return;
      }
      if (auto c = conn.lock()) {
        c->post_reply(std::move(r));
      }
    } catch (const std::exception& e) {
      log::error("http responder failed", {{"what", e.what()}});
    } catch (...) {
      log::error("http responder failed", {{"what", "unknown exception"}});
    }
  }

  std::weak_ptr<connection> conn;
  std::shared_ptr<responder_gate> gate;
  std::atomic<bool> used{false};
};

using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/// One accepted socket, over `Stream` (`plain_stream` or `tls_stream`). Every member is
/// touched only on the socket's strand, except by `stop()` after the I/O threads have been
/// joined.
template <class Stream>
class stream_connection final : public connection, public std::enable_shared_from_this<stream_connection<Stream>> {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

 public:
  stream_connection(server_core& core, tcp::socket socket)
    requires(!is_tls)
      : _core(core), _stream(std::move(socket)) {
    init();
  }
  stream_connection(server_core& core, tcp::socket socket, std::shared_ptr<net::ssl::context> tls)
    requires is_tls
      : _core(core), _tls(std::move(tls)), _stream(beast::tcp_stream{std::move(socket)}, *_tls) {
    init();
  }

  void start() override {
    net::dispatch(_stream.get_executor(), [self = this->shared_from_this()] { self->begin(); });
  }

  void post_reply(std::optional<http_response> r) override {
    net::dispatch(_stream.get_executor(), [self = this->shared_from_this(), r = std::move(r)]() mutable {
      if (r) {
        self->respond(std::move(*r));
      } else {
        self->close();
      }
    });
  }

  /// Delivers a handler's response (on the strand).
  void respond(http_response response) {
    if (_closed || _core.stopping.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    write(std::move(response), _keep_alive, false);
  }

  /// Closes the socket and leaves the server's table. Idempotent.
  void close() {
    if (_closed) {
      return;
    }
    _closed = true;
    beast::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_layer().close();
    _core.forget(this);
  }

  void close_for_stop() override {
    _closed = true;
    tcp_layer().close();
  }

 private:
  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(_stream); }

  /// How long a connection that is closing may take (draining, or the TLS close_notify).
  std::chrono::steady_clock::duration closing_limit() const {
    return std::min<std::chrono::steady_clock::duration>(linger_timeout, _core.options.idle_timeout);
  }

  void init() {
    beast::error_code ec;
    const auto ep = tcp_layer().socket().remote_endpoint(ec);
    if (!ec) {
      const auto addr = ep.address();
      _remote = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
      _remote += ':';
      _remote += std::to_string(ep.port());
    }
    _head.reserve(256);
  }

  /// The first step on the strand: the TLS handshake (within the idle timeout; a client that
  /// fails it is closed, logged at debug), then the first request.
  void begin() {
    if constexpr (is_tls) {
      tcp_layer().expires_after(_core.options.idle_timeout);
      _stream.async_handshake(net::ssl::stream_base::server,
                              beast::bind_front_handler(&stream_connection::on_handshake, this->shared_from_this()));
    } else {
      read_header();
    }
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      log::debug("tls_handshake_failed", {{"remote", _remote}, {"error", ec.message()}});
      close();
      return;
    }
    read_header();
  }

  void read_header() {
    if (_closed) {
      return;
    }
    _parser.emplace();
    _parser->header_limit(header_limit_bytes);
    _parser->body_limit(static_cast<std::uint64_t>(_core.options.max_body_bytes));
    _parser->eager(true);
    tcp_layer().expires_after(_core.options.idle_timeout);
    bhttp::async_read_header(_stream, _buffer, *_parser,
                             beast::bind_front_handler(&stream_connection::on_header, this->shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) {
      on_read_error(ec);
      return;
    }
    if (_core.stopping.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    if (_parser->is_done()) {
      dispatch_request();
      return;
    }
    const auto& msg = _parser->get();
    const auto expect = msg[bhttp::field::expect];
    if (msg.version() >= 11 && iequals(to_std(expect), "100-continue")) {
      static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
      tcp_layer().expires_after(_core.options.idle_timeout);
      net::async_write(_stream, net::buffer(interim.data(), interim.size()),
                       beast::bind_front_handler(&stream_connection::on_continue_written, this->shared_from_this()));
      return;
    }
    read_body();
  }

  void on_continue_written(beast::error_code ec, std::size_t) {
    if (ec) {
      close();
      return;
    }
    read_body();
  }

  void read_body() {
    tcp_layer().expires_after(_core.options.idle_timeout);
    bhttp::async_read(_stream, _buffer, *_parser,
                      beast::bind_front_handler(&stream_connection::on_body, this->shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) {
      on_read_error(ec);
      return;
    }
    if (_core.stopping.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    dispatch_request();
  }

  void on_read_error(beast::error_code ec) {
    if (ec == net::error::operation_aborted || _core.stopping.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      fail(error_response(413, errc::payload_too_large,
                          "request body exceeds " + std::to_string(_core.options.max_body_bytes) + " bytes"));
      return;
    }
    if (ec == bhttp::error::header_limit) {
      fail(error_response(431, errc::payload_too_large, "request header exceeds " +
                                                            std::to_string(header_limit_bytes) + " bytes"));
      return;
    }
    if (ec.category() == http_category() && ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      fail(error_response(400, errc::invalid_argument, "malformed HTTP request: " + ec.message()));
      return;
    }
    // end of stream, idle timeout, reset by peer: nothing to answer.
    close();
  }

  /// Answers an unreadable request and then closes, after draining what the client still sends.
  void fail(http_response response) {
    _parser.reset();
    write(std::move(response), false, true);
  }

  void dispatch_request() {
    auto& msg = _parser->get();
    http_request req;
    req.method = std::string(to_std(msg.method_string()));
    req.target = std::string(to_std(msg.target()));
    req.version = msg.version();
    req.remote = _remote;
    _keep_alive = msg.keep_alive();
    _head_request = msg.method() == bhttp::verb::head;
    if (!split_target(req.target, req)) {
      _parser.reset();
      write(error_response(400, errc::invalid_argument,
                           "invalid request target: not a path, or a bad percent-encoding"),
            _keep_alive, false);
      return;
    }
    req.headers.reserve(static_cast<std::size_t>(std::distance(msg.begin(), msg.end())));
    for (const auto& field : msg) {
      req.headers.emplace_back(lowercase(to_std(field.name_string())), std::string(to_std(field.value())));
      if (field.name() == bhttp::field::authorization && req.authorization.empty()) {
        req.authorization = req.headers.back().second;
      } else if (field.name() == bhttp::field::content_type && req.content_type.empty()) {
        req.content_type = req.headers.back().second;
      }
    }
    req.body = std::move(msg.body());
    _parser.reset();

    auto slot = std::make_shared<reply_slot>(this->weak_from_this(), _core.gate);
    try {
      _core.handler(std::move(req), responder{[slot](http_response r) { slot->deliver(std::move(r)); }});
    } catch (const std::exception& e) {
      log::error("http handler threw", {{"what", e.what()}, {"remote", _remote}});
      slot->deliver(error_response(500, errc::internal, "internal error"));
    } catch (...) {
      log::error("http handler threw", {{"what", "unknown exception"}, {"remote", _remote}});
      slot->deliver(error_response(500, errc::internal, "internal error"));
    }
    // If the handler dropped every copy of its responder, `slot` dies here and closes us.
  }

  void write(http_response response, bool keep_alive, bool linger) {
    if (_core.stopping.load(std::memory_order_relaxed)) {
      keep_alive = false;
    }
    if (response.status < 200 || response.status > 599) {
      log::error("http handler produced an invalid status", {{"status", response.status}});
      response = error_response(500, errc::internal, "internal error");
    }
    _keep_alive = keep_alive;
    _linger = linger;
    _body = std::move(response.body);
    const bool bodiless_status = response.status == 204 || response.status == 304;

    std::string_view reason = to_std(bhttp::obsolete_reason(static_cast<bhttp::status>(response.status)));
    if (reason.empty() || reason.front() == '<') {
      reason = "Status";
    }
    _head.clear();
    _head.append("HTTP/1.1 ");
    append_number(_head, response.status);
    _head.push_back(' ');
    _head.append(reason.data(), reason.size());
    _head.append("\r\nServer: provisiond\r\nDate: ");
    _head.append(http_date());
    _head.append("\r\n");
    if (!response.content_type.empty() && !bodiless_status &&
        is_header_safe("content-type", response.content_type)) {
      _head.append("Content-Type: ");
      _head.append(response.content_type);
      _head.append("\r\n");
    }
    if (!bodiless_status) {
      _head.append("Content-Length: ");
      append_number(_head, _body.size());
      _head.append("\r\n");
    }
    for (const auto& [name, value] : response.headers) {
      if (!is_reserved_header(name) && is_header_safe(name, value)) {
        _head.append(name);
        _head.append(": ");
        _head.append(value);
        _head.append("\r\n");
      }
    }
    _head.append(keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    if (bodiless_status || _head_request) {
      _body.clear();
    }
    _head_request = false;

    const std::array<net::const_buffer, 2> buffers{net::buffer(_head), net::buffer(_body)};
    tcp_layer().expires_after(_core.options.idle_timeout);
    net::async_write(_stream, buffers,
                     beast::bind_front_handler(&stream_connection::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) {
      close();
      return;
    }
    if (_linger) {
      // The rest of the request is read as raw bytes (under TLS too): nothing is answered.
      beast::error_code ignored;
      tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ignored);
      _buffer.consume(_buffer.size());
      _lingered = 0;
      tcp_layer().expires_after(closing_limit());
      drain();
      return;
    }
    if (!_keep_alive) {
      if constexpr (is_tls) {
        // close_notify first, so that the client can tell the end from a truncation.
        tcp_layer().expires_after(closing_limit());
        _stream.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close(); });
        return;
      }
      beast::error_code ignored;
      tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ignored);
      close();
      return;
    }
    _body.clear();
    read_header();
  }

  void drain() {
    tcp_layer().async_read_some(_buffer.prepare(64 * 1024),
                                beast::bind_front_handler(&stream_connection::on_drain, this->shared_from_this()));
  }

  void on_drain(beast::error_code ec, std::size_t n) {
    _lingered += n;
    if (ec || _lingered > linger_max_bytes || _core.stopping.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    drain();
  }

  server_core& _core;
  std::shared_ptr<net::ssl::context> _tls;  ///< what `_stream` was made with (TLS only)
  Stream _stream;
  beast::flat_buffer _buffer;  ///< survives requests: holds pipelined bytes, reuses its memory
  std::optional<bhttp::request_parser<bhttp::string_body>> _parser;
  std::string _head;  ///< status line and headers of the response being written
  std::string _body;  ///< body of the response being written
  std::string _remote;
  std::size_t _lingered = 0;
  bool _keep_alive = false;
  bool _head_request = false;
  bool _linger = false;
  bool _closed = false;
};

void server_core::do_accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void server_core::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || stopping.load()) {
    return;
  }
  if (ec) {
    // Typically out of file descriptors: back off briefly rather than spin.
    log::warn("http accept failed", {{"error", ec.message()}});
    accept_retry.expires_after(accept_retry_delay);
    accept_retry.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping.load()) {
        do_accept();
      }
    });
    return;
  }
  std::shared_ptr<net::ssl::context> context;
  {
    std::lock_guard lock(tls_mutex);
    context = tls;
  }
  std::shared_ptr<connection> c;
  {
    std::lock_guard lock(connections_mutex);
    if (connections.size() < options.max_connections) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (context) {
        c = std::make_shared<stream_connection<tls_stream>>(*this, std::move(socket), std::move(context));
      } else {
        c = std::make_shared<stream_connection<plain_stream>>(*this, std::move(socket));
      }
      connections.emplace(c.get(), c);
    }
  }
  if (c) {
    c->start();
  } else {
    beast::error_code ignored;
    socket.close(ignored);
  }
  do_accept();
}

void server_core::forget(connection* c) {
  std::lock_guard lock(connections_mutex);
  connections.erase(c);
}

}  // namespace detail

http_server::http_server(http_server_options options, http_handler handler)
    : _core(std::make_unique<detail::server_core>(std::move(options), std::move(handler))) {}

http_server::~http_server() {
  stop();
}

const http_server_options& http_server::options() const noexcept {
  return _core->options;
}

result<unsigned short> http_server::start() {
  auto& core = *_core;
  std::lock_guard lifecycle(core.lifecycle_mutex);
  if (core.stopped) {
    return make_error(errc::unavailable, "http server was stopped; it cannot be restarted");
  }
  if (core.started) {
    return make_error(errc::conflict, "http server already started");
  }
  if (!core.handler) {
    return make_error(errc::invalid_argument, "http server needs a handler");
  }
  auto tls = load_tls(core.options);
  if (!tls) {
    return std::move(tls).err();
  }
  if (*tls) {
    core.tls = std::make_shared<net::ssl::context>(std::move(**tls));
  }
  const std::string where = core.options.host + ":" + std::to_string(core.options.port);

  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = net::ip::make_address(core.options.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, core.options.port);
  } else {
    tcp::resolver resolver(core.ioc);
    const auto results = resolver.resolve(core.options.host, std::to_string(core.options.port),
                                          tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return make_error(errc::invalid_argument,
                        "cannot resolve http listen host '" + core.options.host + "': " +
                            (ec ? ec.message() : std::string("no address")));
    }
    endpoint = results.begin()->endpoint();
  }

  auto fail = [&](std::string_view what) {
    beast::error_code ignored;
    core.acceptor.close(ignored);
    return make_error(errc::io_error, "cannot " + std::string(what) + " " + where + ": " + ec.message());
  };
  core.acceptor.open(endpoint.protocol(), ec);
  if (ec) {
    return fail("open a socket for");
  }
  core.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) {
    return fail("set SO_REUSEADDR on");
  }
  core.acceptor.bind(endpoint, ec);
  if (ec) {
    return fail("bind");
  }
  core.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail("listen on");
  }
  const auto bound = core.acceptor.local_endpoint(ec);
  if (ec) {
    return fail("read the bound port of");
  }

  core.work.emplace(core.ioc.get_executor());
  core.do_accept();
  core.started = true;
  const unsigned n = std::max(1u, core.options.threads);
  try {
    for (unsigned i = 0; i < n; ++i) {
      core.threads.emplace_back([&core] {
        name_this_thread("prov.http");
        for (;;) {
          try {
            core.ioc.run();
            return;
          } catch (const std::exception& e) {
            log::error("http io thread caught an exception", {{"what", e.what()}});
          } catch (...) {
            log::error("http io thread caught an exception", {{"what", "unknown exception"}});
          }
        }
      });
    }
  } catch (const std::system_error& e) {
    // Cannot start threads: undo everything (stop() needs the lifecycle lock we hold).
    core.ioc.stop();
    for (auto& t : core.threads) {
      t.join();
    }
    core.threads.clear();
    beast::error_code ignored;
    core.acceptor.close(ignored);
    core.started = false;
    core.stopped = true;
    return make_error(errc::io_error, std::string("cannot start http threads: ") + e.what());
  }
  log::info("http server listening",
            {{"host", core.options.host}, {"port", bound.port()}, {"threads", n}, {"tls", core.tls != nullptr}});
  return bound.port();
}

status http_server::reload_tls() {
  auto& core = *_core;
  {
    std::lock_guard lifecycle(core.lifecycle_mutex);
    if (!core.started) {
      return make_error(errc::unavailable, "http server is not running");
    }
  }
  if (core.options.tls_cert_file.empty()) {
    return make_error(errc::invalid_argument, "http server does not serve TLS: nothing to reload");
  }
  auto tls = load_tls(core.options);
  if (!tls) {
    return std::move(tls).err();
  }
  auto fresh = std::make_shared<net::ssl::context>(std::move(**tls));
  std::lock_guard lock(core.tls_mutex);
  core.tls = std::move(fresh);
  return {};
}

void http_server::stop() {
  auto& core = *_core;
  core.stopping.store(true);
  {
    std::unique_lock gate_lock(core.gate->mutex);
    core.gate->open = false;
  }
  core.ioc.stop();
  if (core.ioc.get_executor().running_in_this_thread()) {
    // Called from a handler: this thread cannot join itself. The loop is stopped; a later
    // stop() (or the destructor) from another thread finishes the job.
    return;
  }

  std::lock_guard lifecycle(core.lifecycle_mutex);
  core.stopped = true;
  for (auto& t : core.threads) {
    if (t.joinable()) {
      t.join();
    }
  }
  core.threads.clear();
  if (!core.started) {
    return;
  }

  // No I/O thread runs any more: sockets may be touched directly.
  beast::error_code ignored;
  core.acceptor.close(ignored);
  core.accept_retry.cancel();
  std::unordered_map<detail::connection*, std::shared_ptr<detail::connection>> open;
  {
    std::lock_guard lock(core.connections_mutex);
    open.swap(core.connections);
  }
  for (auto& [ptr, c] : open) {
    c->close_for_stop();
  }
  open.clear();
  core.work.reset();
  // Run the completions of the aborted operations so that they release their connections now.
  try {
    core.ioc.restart();
    core.ioc.poll();
  } catch (const std::exception& e) {
    log::error("http server stop: draining the io loop failed", {{"what", e.what()}});
  }
  core.started = false;
}

}  // namespace prov::gateway
