#pragma once
/// Test certificates made at test time with OpenSSL's C API: a CA and server certificates it
/// signed, so TLS tests need no checked-in keys and never expire.

#include <string>
#include <vector>

namespace prov::test {

/// A certificate authority that can sign server certificates.
struct test_ca {
  std::string cert_pem;
  std::string key_pem;
};

/// A server identity: its certificate (signed by a test CA) and private key.
struct test_identity {
  std::string cert_pem;
  std::string key_pem;
};

/// A fresh self-signed CA (EC P-256, valid for a day).
test_ca make_test_ca(const std::string& common_name = "provisiond test CA");

/// A server certificate signed by `ca`, with the given DNS names and IP addresses as
/// subjectAltName entries (what host name verification checks).
test_identity make_server_identity(const test_ca& ca, const std::vector<std::string>& dns_names = {"localhost"},
                                   const std::vector<std::string>& ip_addresses = {"127.0.0.1"});

/// A file with the given text, removed when this object goes away.
class temp_file {
 public:
  explicit temp_file(const std::string& text, const std::string& suffix = ".pem");
  ~temp_file();
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const noexcept { return _path; }

 private:
  std::string _path;
};

}  // namespace prov::test
