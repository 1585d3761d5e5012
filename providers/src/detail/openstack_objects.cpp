#include "detail/openstack_objects.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "prov/core/ids.hpp"
#include "prov/core/secret_box.hpp"

namespace prov::providers::openstack {

namespace {

bool tag_safe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

std::string name_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    out += tag_safe(c) ? c : '-';
  }
  return out;
}

std::string cut(std::string_view s, std::size_t n) {
  return std::string{s.substr(0, std::min(n, s.size()))};
}

std::string step_name(events::step_kind s) {
  return std::string{events::step_kind_names[static_cast<std::size_t>(s)]};
}

std::string text_of(const json& j, std::string_view key) {
  if (!j.is_object()) {
    return {};
  }
  auto it = j.find(std::string{key});
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

}  // namespace

std::optional<events::step_kind> step_from_name(std::string_view name) {
  for (std::size_t i = 0; i < events::step_kind_names.size(); ++i) {
    if (events::step_kind_names[i] == name) {
      return static_cast<events::step_kind>(i);
    }
  }
  return std::nullopt;
}

std::string request_tag(std::string_view request_id) {
  const bool valid = !request_id.empty() && request_id.size() <= 40 &&
                     std::all_of(request_id.begin(), request_id.end(), [](char c) { return tag_safe(c); });
  return "provisiond-req-" + (valid ? std::string{request_id} : sha256_hex(request_id).substr(0, 32));
}

std::string server_name(std::string_view prefix, std::string_view request_id) {
  return name_safe(std::string{prefix} + std::string{request_id});
}

std::string security_group_name(std::string_view prefix, std::string_view request_id) {
  return server_name(prefix, request_id);
}

std::string volume_name(std::string_view prefix, std::string_view request_id) {
  return server_name(prefix, request_id) + "-boot";
}

json metadata_for(const owner& o) {
  return {{std::string{meta_managed}, "1"},
          {std::string{meta_request}, cut(o.request_id, 255)},
          {std::string{meta_tenant}, cut(o.tenant, 255)},
          {std::string{meta_key}, cut(o.idempotency_key, 255)},
          {std::string{meta_step}, step_name(o.step)}};
}

std::optional<owner> owner_from_metadata(const json& metadata) {
  if (!metadata.is_object() || text_of(metadata, meta_managed) != "1") {
    return std::nullopt;
  }
  owner o;
  o.request_id = text_of(metadata, meta_request);
  if (o.request_id.empty()) {
    return std::nullopt;
  }
  o.tenant = text_of(metadata, meta_tenant);
  o.idempotency_key = text_of(metadata, meta_key);
  o.step = step_from_name(text_of(metadata, meta_step)).value_or(events::step_kind::allocate);
  return o;
}

std::string description_for(const owner& o) {
  json marker{{"request", o.request_id}, {"step", step_name(o.step)}, {"key", o.idempotency_key}, {"tenant", o.tenant}};
  std::string text = std::string{description_prefix} + marker.dump();
  if (text.size() > 255) {
    marker.erase("tenant");
    text = std::string{description_prefix} + marker.dump();
  }
  if (text.size() > 255) {
    marker.erase("key");
    text = std::string{description_prefix} + marker.dump();
  }
  return text;  // a request id over ~200 characters would not fit: ids are UUIDs
}

std::optional<owner> owner_from_description(std::string_view description) {
  if (description.substr(0, description_prefix.size()) != description_prefix) {
    return std::nullopt;
  }
  const json marker = json::parse(description.substr(description_prefix.size()), nullptr, false);
  if (marker.is_discarded() || !marker.is_object()) {
    return std::nullopt;
  }
  owner o;
  o.request_id = text_of(marker, "request");
  if (o.request_id.empty()) {
    return std::nullopt;
  }
  o.tenant = text_of(marker, "tenant");
  o.idempotency_key = text_of(marker, "key");
  o.step = step_from_name(text_of(marker, "step")).value_or(events::step_kind::allocate);
  return o;
}

std::optional<owner> owner_of(const json& object) {
  if (!object.is_object()) {
    return std::nullopt;
  }
  if (auto it = object.find("metadata"); it != object.end() && it->is_object()) {
    if (auto o = owner_from_metadata(*it)) {
      return o;
    }
  }
  return owner_from_description(text_of(object, "description"));
}

bool owned_by(const json& object, std::string_view request_id) {
  const auto o = owner_of(object);
  return o && o->request_id == request_id;
}

json security_group_body(std::string_view name, const owner& o) {
  return {{"security_group", {{"name", std::string{name}}, {"description", description_for(o)}}}};
}

const std::vector<int>& ingress_ports() {
  static const std::vector<int> ports{22, 80, 443};
  return ports;
}

json ingress_rule_body(std::string_view group_id, int port) {
  return {{"security_group_rule",
           {{"security_group_id", std::string{group_id}},
            {"direction", "ingress"},
            {"ethertype", "IPv4"},
            {"protocol", "tcp"},
            {"port_range_min", port},
            {"port_range_max", port},
            {"remote_ip_prefix", "0.0.0.0/0"},
            {"description", "provisiond"}}}};
}

json tags_body(std::string_view request_id) {
  return {{"tags", {std::string{managed_tag}, request_tag(request_id)}}};
}

json volume_body(std::string_view name, std::int64_t size_gb, std::string_view image_id, const owner& o) {
  return {{"volume",
           {{"name", std::string{name}},
            {"size", size_gb},
            {"imageRef", std::string{image_id}},
            {"description", "boot volume of provisiond request " + cut(o.request_id, 200)},
            {"metadata", metadata_for(o)}}}};
}

json server_body(const server_plan& plan, const owner& o) {
  json bdm{{"boot_index", 0}, {"destination_type", "volume"}, {"delete_on_termination", true}};
  if (plan.boot_volume == openstack_boot_volume::cinder) {
    bdm["source_type"] = "volume";
    bdm["uuid"] = plan.volume_id;
  } else {
    bdm["source_type"] = "image";
    bdm["uuid"] = plan.image_id;
    bdm["volume_size"] = plan.volume_size_gb;
  }
  json server{{"name", plan.name},
              {"flavorRef", plan.flavor_id},
              {"networks", json::array({{{"uuid", plan.network_id}}})},
              // Nova resolves the group by name or id; the id is unambiguous (names may repeat).
              {"security_groups", json::array({{{"name", plan.security_group_id}}})},
              {"block_device_mapping_v2", json::array({bdm})},
              {"metadata", metadata_for(o)},
              {"tags", tags_body(o.request_id)["tags"]},
              {"description", cut("provisiond request " + o.request_id, 255)}};
  if (!plan.key_name.empty()) {
    server["key_name"] = plan.key_name;
  }
  if (!plan.user_data.empty()) {
    server["user_data"] = base64_encode(plan.user_data);
  }
  return {{"server", server}};
}

json floating_ip_body(std::string_view network_id, std::string_view port_id, const owner& o) {
  return {{"floatingip",
           {{"floating_network_id", std::string{network_id}},
            {"port_id", std::string{port_id}},
            {"description", description_for(o)}}}};
}

std::string login_password(std::string_view cluster_secret, std::string_view request_id) {
  static constexpr std::string_view alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  const std::string message = "provisiond login password\n" + std::string{request_id};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), cluster_secret.data(), static_cast<int>(cluster_secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  std::string out;
  for (unsigned int i = 0; i < length && out.size() < 20; ++i) {
    out += alphabet[digest[i] % alphabet.size()];
  }
  return out;
}

std::string cloud_config(std::string_view user, std::string_view password) {
  std::string out = "#cloud-config\nssh_pwauth: true\nusers:\n  - default\n";
  out += "  - name: " + std::string{user} + "\n";
  out += "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    shell: /bin/bash\n    lock_passwd: false\n";
  out += "    plain_text_passwd: \"" + std::string{password} + "\"\n";
  return out;
}

}  // namespace prov::providers::openstack
