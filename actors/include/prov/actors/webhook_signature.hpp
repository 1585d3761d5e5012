#pragma once
/// Signing webhook deliveries. The receiver recomputes the signature with the secret it
/// was shown at registration and compares it in constant time:
///
///     X-Webhook-Timestamp: <unix seconds>
///     X-Signature-256:     sha256=<lowercase hex of HMAC-SHA256(secret, "<timestamp>.<body>")>
///
/// Signing the timestamp with the body lets a receiver refuse replays of old deliveries.

#include <cstdint>
#include <string>
#include <string_view>

namespace prov::actors {

/// HMAC-SHA256 of `data` under `key`, as 64 lowercase hex digits (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// The `X-Signature-256` value for a body sent at `unix_seconds`: "sha256=" + the HMAC of
/// "<unix_seconds>.<body>" under `secret`.
std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds, std::string_view body);

}  // namespace prov::actors
