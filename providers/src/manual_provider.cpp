#include "prov/providers/manual_provider.hpp"

namespace prov::providers {

step_outcome manual_provider::run_step(const step_call& call) {
  step_outcome out;
  if (call.step == events::step_kind::allocate) {
    out.awaiting_input = true;
    return out;
  }
  out.ok = true;  // configure, activate, verify: the vendor did it; the input is the evidence
  return out;
}

metrics_sample manual_provider::metrics(const service_call&) {
  metrics_sample m;
  m.error = provider_error{"unsupported", "a manually delivered service has no metrics source", false};
  return m;
}

}  // namespace prov::providers
