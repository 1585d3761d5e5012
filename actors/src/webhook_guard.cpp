#include "prov/actors/webhook_guard.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>

namespace prov::actors {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool in_v4(std::uint32_t ip, std::uint32_t net, int bits) {
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (ip & mask) == (net & mask);
}

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | std::uint32_t{d};
}

address_class classify_v4(std::uint32_t ip) {
  if (ip == v4(100, 100, 100, 200)) {
    return address_class::metadata;  // Alibaba Cloud's metadata service
  }
  if (in_v4(ip, v4(169, 254, 0, 0), 16)) {
    return address_class::link_local;  // includes 169.254.169.254, the usual metadata service
  }
  if (in_v4(ip, v4(0, 0, 0, 0), 8)) {
    return address_class::unspecified;
  }
  if (in_v4(ip, v4(127, 0, 0, 0), 8)) {
    return address_class::loopback;
  }
  if (in_v4(ip, v4(10, 0, 0, 0), 8) || in_v4(ip, v4(172, 16, 0, 0), 12) || in_v4(ip, v4(192, 168, 0, 0), 16) ||
      in_v4(ip, v4(100, 64, 0, 0), 10)) {
    return address_class::private_address;
  }
  if (in_v4(ip, v4(224, 0, 0, 0), 3)) {
    return address_class::reserved;  // multicast, reserved, broadcast
  }
  return address_class::public_address;
}

address_class classify_v6(const std::array<unsigned char, 16>& a) {
  const auto zero = [&](std::size_t from, std::size_t to) {
    return std::all_of(a.begin() + static_cast<std::ptrdiff_t>(from), a.begin() + static_cast<std::ptrdiff_t>(to),
                       [](unsigned char b) { return b == 0; });
  };
  const auto embedded_v4 = [&] { return v4(a[12], a[13], a[14], a[15]); };
  if (zero(0, 16)) {
    return address_class::unspecified;
  }
  if (zero(0, 15) && a[15] == 1) {
    return address_class::loopback;
  }
  if (zero(0, 10) && a[10] == 0xff && a[11] == 0xff) {
    return classify_v4(embedded_v4());  // IPv4-mapped
  }
  if (zero(0, 12)) {
    return classify_v4(embedded_v4());  // IPv4-compatible (deprecated)
  }
  if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && zero(4, 12)) {
    return classify_v4(embedded_v4());  // NAT64 well-known prefix
  }
  static constexpr std::array<unsigned char, 16> aws_metadata{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                                              0,    0,    0,    0,    0, 0, 0x02, 0x54};
  if (a == aws_metadata) {
    return address_class::metadata;
  }
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) {
    return address_class::link_local;  // fe80::/10
  }
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) {
    return address_class::private_address;  // fec0::/10, deprecated site-local
  }
  if ((a[0] & 0xfe) == 0xfc) {
    return address_class::private_address;  // fc00::/7, unique local
  }
  if (a[0] == 0xff) {
    return address_class::reserved;  // multicast
  }
  return address_class::public_address;
}

/// A label the C library's inet_aton would read as a number (decimal, octal or 0x-hex).
bool numeric_label(std::string_view label) {
  if (label.empty()) {
    return false;
  }
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    return std::all_of(label.begin() + 2, label.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  }
  return std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool looks_numeric(std::string_view host) {
  std::size_t start = 0;
  while (true) {
    const auto dot = host.find('.', start);
    const auto label = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!numeric_label(label)) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

/// Host names that name a metadata service on the common clouds.
bool metadata_name(std::string_view host) {
  const auto h = lowercase(host);
  return h == "metadata.google.internal" || h == "metadata.goog" || h == "metadata" || h == "instance-data" ||
         h == "instance-data.ec2.internal";
}

std::string policy_hint(address_class c) {
  switch (c) {
    case address_class::loopback:
      return " (allow with --webhook-allow-loopback)";
    case address_class::private_address:
      return " (allow with --webhook-allow-private)";
    case address_class::link_local:
    case address_class::metadata:
    case address_class::unspecified:
      return " (only --webhook-allow-link-local allows it; never do that where a metadata service answers)";
    default:
      return "";
  }
}

}  // namespace

std::string_view to_string(address_class c) noexcept {
  switch (c) {
    case address_class::public_address: return "public";
    case address_class::loopback: return "loopback";
    case address_class::private_address: return "private";
    case address_class::link_local: return "link-local";
    case address_class::metadata: return "metadata";
    case address_class::unspecified: return "unspecified";
    case address_class::reserved: return "multicast/reserved";
  }
  return "unknown";
}

std::optional<address_class> classify_address(std::string_view ip) {
  if (ip.empty() || ip.size() > 64) {
    return std::nullopt;
  }
  const std::string text{ip};
  in_addr a4{};
  if (::inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    return classify_v4(ntohl(a4.s_addr));
  }
  in6_addr a6{};
  if (::inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    std::array<unsigned char, 16> bytes{};
    std::memcpy(bytes.data(), &a6, 16);
    return classify_v6(bytes);
  }
  return std::nullopt;
}

bool allowed(address_class c, const webhook_address_policy& policy) noexcept {
  switch (c) {
    case address_class::public_address: return true;
    case address_class::loopback: return policy.allow_loopback;
    case address_class::private_address: return policy.allow_private;
    case address_class::link_local:
    case address_class::metadata:
    case address_class::unspecified: return policy.allow_link_local;
    case address_class::reserved: return false;
  }
  return false;
}

result<webhook_target> parse_webhook_url(std::string_view url) {
  const auto bad = [](std::string what) { return make_error(errc::invalid_argument, "url " + std::move(what)); };
  if (url.empty() || url.size() > max_webhook_url) {
    return bad("must be 1 to " + std::to_string(max_webhook_url) + " characters");
  }
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return bad("must not contain spaces or control characters");
    }
  }
  webhook_target out;
  std::string_view rest;
  const auto scheme = lowercase(url.substr(0, std::min<std::size_t>(url.size(), 8)));
  if (scheme.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = url.substr(8);
  } else if (scheme.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return bad("must start with http:// or https://");
  }
  if (rest.find('#') != std::string_view::npos) {
    return bad("must not have a fragment (#...)");
  }
  const auto authority_end = rest.find_first_of("/?");
  const auto authority = rest.substr(0, authority_end);
  out.authority = std::string{authority};
  out.target = authority_end == std::string_view::npos ? std::string{"/"} : std::string{rest.substr(authority_end)};
  if (out.target.front() == '?') {
    out.target.insert(out.target.begin(), '/');
  }
  if (authority.find('@') != std::string_view::npos) {
    return bad("must not contain user info (user:password@)");
  }
  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return bad("has a malformed IPv6 host");
    }
    host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return bad("has a malformed authority");
      }
      port = after.substr(1);
      if (port.empty()) {
        return bad("has an empty port");
      }
    }
    if (!classify_address(host)) {
      return bad("has a malformed IPv6 host");
    }
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) {
        return bad("has an empty port");
      }
    }
  }
  if (host.empty()) {
    return bad("has no host");
  }
  if (host.size() > 253) {
    return bad("has a host name longer than 253 characters");
  }
  if (!port.empty()) {
    const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    const auto value = digits ? std::stoul(std::string{port}) : 0;
    if (!digits || value < 1 || value > 65535) {
      return bad("has a port that is not from 1 to 65535");
    }
    out.port = std::to_string(value);
  } else {
    out.port = out.tls ? "443" : "80";
  }
  out.host = std::string{host};
  out.host_is_ip = classify_address(host).has_value();
  if (!out.host_is_ip) {
    if (host.find(':') != std::string_view::npos) {
      return bad("has an IPv6 host without brackets");
    }
    if (looks_numeric(host)) {
      return bad("host '" + out.host + "' looks numeric but is not a dotted-quad IPv4 address");
    }
    for (const char c : host) {
      const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
      if (!ok) {
        return bad("host may contain only letters, digits, '-', '_' and '.'");
      }
    }
  }
  return out;
}

status check_webhook_url(std::string_view url, const webhook_address_policy& policy) {
  auto target = parse_webhook_url(url);
  if (!target) {
    return std::move(target).err();
  }
  if (target->host_is_ip) {
    const auto c = *classify_address(target->host);
    if (!allowed(c, policy)) {
      return make_error(errc::invalid_argument, "url host " + target->host + " is a " + std::string{to_string(c)} +
                                                    " address; webhooks may not target it" + policy_hint(c));
    }
  } else if (const auto h = lowercase(target->host);
             (h == "localhost" || (h.size() > 10 && h.ends_with(".localhost"))) && !policy.allow_loopback) {
    return make_error(errc::invalid_argument, "url host " + target->host + " is a loopback name; webhooks may not target it" +
                                                  policy_hint(address_class::loopback));
  } else if (metadata_name(target->host) && !policy.allow_link_local) {
    return make_error(errc::invalid_argument, "url host " + target->host +
                                                  " names a cloud metadata service; webhooks may not target it");
  }
  return {};
}

status check_resolved(std::string_view host, const std::vector<std::string>& addresses,
                      const webhook_address_policy& policy) {
  if (addresses.empty()) {
    return make_error(errc::unavailable, std::string{host} + " resolves to no address");
  }
  for (const auto& a : addresses) {
    const auto c = classify_address(a);
    if (!c) {
      return make_error(errc::forbidden, std::string{host} + " resolves to '" + a + "', not an IP address");
    }
    if (!allowed(*c, policy)) {
      return make_error(errc::forbidden, std::string{host} + " resolves to " + a + ", a " + std::string{to_string(*c)} +
                                             " address: refused by the webhook address guard" + policy_hint(*c));
    }
  }
  return {};
}

}  // namespace prov::actors
