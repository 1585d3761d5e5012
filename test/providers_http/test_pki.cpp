#include "test_pki.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace prov::test {

namespace {

struct pkey_free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
  void operator()(X509* p) const { X509_free(p); }
};
struct bio_free {
  void operator()(BIO* p) const { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

void check(bool ok, const char* what) {
  if (!ok) {
    throw std::runtime_error(std::string{"test pki: "} + what + " failed");
  }
}

pkey_ptr make_key() {
  pkey_ptr key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
  check(key != nullptr, "EC key generation");
  return key;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string key_pem(EVP_PKEY* key) {
  bio_ptr bio{BIO_new(BIO_s_mem())};
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1, "write key");
  return bio_text(bio.get());
}

std::string cert_pem(X509* cert) {
  bio_ptr bio{BIO_new(BIO_s_mem())};
  check(PEM_write_bio_X509(bio.get(), cert) == 1, "write certificate");
  return bio_text(bio.get());
}

pkey_ptr read_key(const std::string& pem) {
  bio_ptr bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
  pkey_ptr key{PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)};
  check(key != nullptr, "read key");
  return key;
}

x509_ptr read_cert(const std::string& pem) {
  bio_ptr bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
  x509_ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
  check(cert != nullptr, "read certificate");
  return cert;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "extension");
  check(X509_add_ext(cert, ext, -1) == 1, "add extension");
  X509_EXTENSION_free(ext);
}

x509_ptr new_cert(EVP_PKEY* key, const std::string& common_name, long serial) {
  x509_ptr cert{X509_new()};
  check(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  return cert;
}

long next_serial() {
  static std::atomic<long> serial{1000};
  return ++serial;
}

}  // namespace

test_ca make_test_ca(const std::string& common_name) {
  auto key = make_key();
  auto cert = new_cert(key.get(), common_name, next_serial());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "sign CA");
  return test_ca{cert_pem(cert.get()), key_pem(key.get())};
}

test_identity make_server_identity(const test_ca& ca, const std::vector<std::string>& dns_names,
                                   const std::vector<std::string>& ip_addresses) {
  auto ca_key = read_key(ca.key_pem);
  auto ca_cert = read_cert(ca.cert_pem);
  auto key = make_key();
  const std::string cn = dns_names.empty() ? "test server" : dns_names.front();
  auto cert = new_cert(key.get(), cn, next_serial());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  std::string san;
  for (const auto& d : dns_names) {
    san += (san.empty() ? "" : ",") + std::string{"DNS:"} + d;
  }
  for (const auto& ip : ip_addresses) {
    san += (san.empty() ? "" : ",") + std::string{"IP:"} + ip;
  }
  add_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_extension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth");
  if (!san.empty()) {
    add_extension(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  }
  check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0, "sign server certificate");
  return test_identity{cert_pem(cert.get()), key_pem(key.get())};
}

temp_file::temp_file(const std::string& text, const std::string& suffix) {
  const char* dir = std::getenv("TMPDIR");
  std::string pattern = std::string{dir != nullptr && *dir != '\0' ? dir : "/tmp"} + "/prov-test-XXXXXX" + suffix;
  const int fd = ::mkstemps(pattern.data(), static_cast<int>(suffix.size()));
  check(fd >= 0, "mkstemps");
  ::close(fd);
  _path = pattern;
  std::ofstream out{_path, std::ios::binary | std::ios::trunc};
  out << text;
  check(static_cast<bool>(out), "write temp file");
}

temp_file::~temp_file() {
  std::remove(_path.c_str());
}

}  // namespace prov::test
