#pragma once
// A TLS handshake as a client with a capped protocol version, to see which versions a server
// accepts. Loopback only; every read is bounded by a 10 s receive timeout.

#include <sys/socket.h>
#include <sys/time.h>

#include <optional>
#include <string>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/ssl.h>

namespace prov::test {

/// Connects to 127.0.0.1:`port` trusting `ca_pem`, offering TLS versions up to `max_version`
/// (`TLS1_2_VERSION`, ...; 0: the newest OpenSSL has). The version the handshake agreed on
/// ("TLSv1.3"), or nothing when the server refused it.
inline std::optional<std::string> tls_handshake(unsigned short port, const std::string& ca_pem, int max_version = 0) {
  namespace net = boost::asio;
  net::io_context ioc;
  net::ssl::context ctx{net::ssl::context::tls_client};
  ctx.add_certificate_authority(net::buffer(ca_pem));
  ctx.set_verify_mode(net::ssl::verify_peer);
  if (max_version != 0 && SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version) != 1) {
    return std::nullopt;
  }
  net::ssl::stream<net::ip::tcp::socket> stream{ioc, ctx};
  boost::system::error_code ec;
  stream.next_layer().connect({net::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) {
    return std::nullopt;
  }
  const timeval limit{10, 0};
  ::setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  stream.handshake(net::ssl::stream_base::client, ec);
  if (ec) {
    return std::nullopt;
  }
  std::string version = SSL_get_version(stream.native_handle());
  stream.next_layer().close(ec);  // no close_notify: only the handshake is of interest
  return version;
}

}  // namespace prov::test
