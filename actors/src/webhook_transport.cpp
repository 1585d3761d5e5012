// The production webhook transport: a few worker threads POSTing through the shared HTTP(S)
// client, each target's addresses checked by the SSRF guard after resolution.

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "prov/actors/webhooks.hpp"
#include "prov/core/thread_name.hpp"
#include "prov/providers/http/client.hpp"

namespace prov::actors {

result<std::vector<std::string>> resolve_host(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return make_error(errc::unavailable, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  }
  std::vector<std::string> out;
  for (auto* a = found; a != nullptr; a = a->ai_next) {
    char text[NI_MAXHOST];
    if (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0) {
      std::string s{text};
      if (const auto pct = s.find('%'); pct != std::string::npos) {
        s.resize(pct);  // an IPv6 zone ("fe80::1%eth0") is not part of the address
      }
      if (std::find(out.begin(), out.end(), s) == out.end()) {
        out.push_back(std::move(s));
      }
    }
  }
  ::freeaddrinfo(found);
  return out;
}

namespace {

class http_transport final : public webhook_transport {
 public:
  http_transport(const webhook_options& options, webhook_resolver resolver) : _shared(std::make_shared<shared>()) {
    providers::http::client_options o;
    o.verify_tls = true;
    o.ca_bundle = options.ca_bundle;
    o.connect_timeout = options.timeout;
    o.request_timeout = options.timeout;
    o.max_response_bytes = 64 << 10;  // receivers' answers are not read beyond their status
    o.user_agent = options.user_agent;
    _shared->client = std::make_unique<providers::http::client>(o);
    _shared->policy = options.addresses;
    _shared->resolver = std::move(resolver);
    const auto threads = std::max<std::size_t>(1, options.max_concurrent);
    _shared->per_tenant = options.max_concurrent_per_tenant > 0 ? options.max_concurrent_per_tenant
                                                                 : std::max<std::size_t>(1, threads / 4);
    for (std::size_t i = 0; i < threads; ++i) {
      std::thread{[s = _shared] {
        name_this_thread("prov.webhook");
        s->work();
      }}.detach();
    }
  }

  ~http_transport() override {
    // Workers in a POST finish it (bounded by the timeout), find `stop` and leave; they own
    // what they use, so nothing waits here.
    {
      std::lock_guard<std::mutex> guard{_shared->mutex};
      _shared->stop = true;
      _shared->jobs.clear();
    }
    _shared->wake.notify_all();
  }

  void post(webhook_post request, std::function<void(webhook_reply)> done) override {
    {
      std::lock_guard<std::mutex> guard{_shared->mutex};
      if (_shared->stop) {
        return;
      }
      _shared->jobs.push_back(job{std::move(request), std::move(done)});
    }
    _shared->wake.notify_one();
  }

 private:
  struct job {
    webhook_post request;
    std::function<void(webhook_reply)> done;
  };

  struct shared {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<job> jobs;
    std::size_t per_tenant = 1;                           ///< POSTs at once for one tenant
    std::unordered_map<std::string, std::size_t> busy;  ///< POSTs in flight by tenant
    bool stop = false;
    std::unique_ptr<providers::http::client> client;
    webhook_address_policy policy;
    webhook_resolver resolver;

    /// The oldest job whose tenant is below its share of the threads.
    std::deque<job>::iterator next_job() {
      return std::find_if(jobs.begin(), jobs.end(),
                          [&](const job& j) { return busy[j.request.tenant] < per_tenant; });
    }

    void work() {
      while (true) {
        job j;
        {
          std::unique_lock<std::mutex> lock{mutex};
          wake.wait(lock, [&] { return stop || next_job() != jobs.end(); });
          if (stop) {
            return;
          }
          const auto it = next_job();
          j = std::move(*it);
          jobs.erase(it);
          ++busy[j.request.tenant];
        }
        auto reply = send(j.request);
        {
          std::lock_guard<std::mutex> guard{mutex};
          if (--busy[j.request.tenant] == 0) {
            busy.erase(j.request.tenant);
          }
        }
        wake.notify_all();  // a job of this tenant may be eligible now
        j.done(std::move(reply));
      }
    }

    webhook_reply send(const webhook_post& post) {
      const auto started = std::chrono::steady_clock::now();
      const auto elapsed = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
      };
      auto target = parse_webhook_url(post.url);
      if (!target) {
        return webhook_reply{0, elapsed(), target.err().message};
      }
      std::vector<std::string> addresses;
      if (target->host_is_ip) {
        addresses.push_back(target->host);
      } else {
        auto resolved = resolver(target->host, target->port);
        if (!resolved) {
          return webhook_reply{0, elapsed(), resolved.err().message};
        }
        addresses = std::move(*resolved);
      }
      if (auto checked = check_resolved(target->host, addresses, policy); !checked) {
        return webhook_reply{0, elapsed(), checked.err().message};
      }
      providers::http::request req;
      req.method = "POST";
      req.headers = post.headers;
      req.body = post.body;
      if (target->tls || target->host_is_ip) {
        req.url = post.url;  // HTTPS: the certificate is checked against the name
      } else {
        // Plain HTTP goes to the address that was checked; the name is only the Host header.
        const auto& ip = addresses.front();
        const auto host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
        req.url = "http://" + host + ":" + target->port + target->target;
        req.headers.emplace_back("Host", target->authority);
      }
      auto answer = client->send(req);
      if (!answer) {
        return webhook_reply{0, elapsed(), answer.err().message};
      }
      return webhook_reply{answer->status, elapsed(), {}};
    }
  };

  std::shared_ptr<shared> _shared;
};

}  // namespace

std::shared_ptr<webhook_transport> make_http_webhook_transport(const webhook_options& options, webhook_resolver resolver) {
  return std::make_shared<http_transport>(options, std::move(resolver));
}

}  // namespace prov::actors
