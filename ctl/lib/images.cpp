// pull, images, rmi, inspecti: the image service.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "ctl/lib/config_input.hpp"
#include "ctl/lib/output.hpp"
#include "ctl/lib/verbs.hpp"

namespace berth::ctl {
namespace {

// "registry:5000/library/busybox:1.36" -> ("registry:5000/library/busybox", "1.36"); a
// colon before the last '/' belongs to the host.
std::pair<std::string, std::string> split_tag(const std::string& ref) {
  auto colon = ref.rfind(':');
  auto slash = ref.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) return {ref, "<none>"};
  return {ref.substr(0, colon), ref.substr(colon + 1)};
}

std::optional<cri::Image> image_status(Client& c, const std::string& ref, bool verbose = false,
                                       cri::ImageStatusResponse* full = nullptr) {
  cri::ImageStatusRequest req;
  req.mutable_image()->set_image(ref);
  req.set_verbose(verbose);
  cri::ImageStatusResponse resp;
  BERTHCTL_CALL(c, images, ImageStatus, req, resp);
  if (full) *full = resp;
  if (!resp.has_image()) return std::nullopt;
  return resp.image();
}

// CRI's PullImage is one unary call with no progress: on a terminal, a spinner with the
// elapsed time tells the call is alive (Debian 12 packages no C/C++ progress library, see
// docs/cri.md); off a terminal nothing but plain lines.
class Spinner {
public:
  explicit Spinner(std::string what) : what_(std::move(what)), tty_(isatty(STDERR_FILENO) == 1) {
    if (tty_) thread_ = std::thread([this] { run(); });
  }
  ~Spinner() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    done_ = true;
    thread_.join();
    std::fputs("\r\033[K", stderr);
  }

private:
  void run() {
    static const char* frames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; !done_; ++i) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\r\033[K%s Pulling %s  %.1fs", frames[i % std::size(frames)], what_.c_str(), secs);
      std::fflush(stderr);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::string what_;
  bool tty_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

} // namespace

int cmd_pull(Client& c, const PullOptions& o) {
  cri::PullImageRequest req;
  req.mutable_image()->set_image(o.image);
  if (!o.creds.empty()) {
    auto colon = o.creds.find(':');
    if (colon == std::string::npos) throw std::invalid_argument("--creds: expected USERNAME[:PASSWORD]");
    req.mutable_auth()->set_username(o.creds.substr(0, colon));
    req.mutable_auth()->set_password(o.creds.substr(colon + 1));
  }
  if (!o.auth.empty()) req.mutable_auth()->set_auth(o.auth);
  if (!o.pod_config.empty()) load_config(o.pod_config, *req.mutable_sandbox_config());
  if (!isatty(STDERR_FILENO)) std::cerr << "Pulling image " << o.image << '\n';
  auto start = std::chrono::steady_clock::now();
  cri::PullImageResponse resp;
  {
    Spinner spin(o.image);
    // A pull lasts as long as the registry takes: no deadline unless --timeout was given
    // explicitly larger than the default.
    auto ctx = c.context(c.timeout() > std::chrono::seconds(2) ? c.timeout() : std::chrono::milliseconds(-1));
    auto st = c.images().PullImage(ctx.get(), req, &resp);
    spin.stop();
    check(st, "PullImage");
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "Image is up to date for " << resp.image_ref() << '\n';
  if (auto img = image_status(c, resp.image_ref()))
    std::cerr << fmt::format("Pulled {} ({}) in {:.1f}s\n", o.image, human_size(static_cast<double>(img->size())),
                             secs);
  return 0;
}

int cmd_images(Client& c, const ImagesOptions& o) {
  Format f = parse_format(o.output);
  cri::ListImagesRequest req;
  if (!o.filter.empty()) req.mutable_filter()->mutable_image()->set_image(o.filter);
  cri::ListImagesResponse resp;
  BERTHCTL_CALL(c, images, ListImages, req, resp);
  if (o.quiet) {
    for (const auto& img : resp.images()) std::cout << img.id() << '\n';
    return 0;
  }
  if (f != Format::table) {
    auto items = nlohmann::json::array();
    for (const auto& img : resp.images()) items.push_back(to_json(img));
    print_tree(std::cout, {{"images", items}}, f);
    return 0;
  }
  Table t(o.digests ? std::vector<std::string>{"IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE"}
                    : std::vector<std::string>{"IMAGE", "TAG", "IMAGE ID", "SIZE"});
  for (const auto& img : resp.images()) {
    std::string digest = "<none>";
    if (!img.repo_digests().empty()) {
      const auto& d = img.repo_digests(0);
      auto at = d.find('@');
      digest = short_id(at == std::string::npos ? d : d.substr(at + 1));
    }
    std::vector<std::pair<std::string, std::string>> names;
    for (const auto& tag : img.repo_tags()) names.push_back(split_tag(tag));
    if (names.empty()) {
      std::string repo = "<none>";
      if (!img.repo_digests().empty()) repo = img.repo_digests(0).substr(0, img.repo_digests(0).find('@'));
      names.emplace_back(repo, "<none>");
    }
    for (const auto& [repo, tag] : names) {
      std::vector<std::string> row{repo, tag};
      if (o.digests) row.push_back(digest);
      row.push_back(short_id(img.id()));
      row.push_back(human_size(static_cast<double>(img.size())));
      t.add(row);
    }
  }
  t.print(std::cout);
  return 0;
}

int cmd_rmi(Client& c, const std::vector<std::string>& given, bool all, bool prune) {
  std::vector<std::string> refs = given;
  if (all || prune) {
    std::set<std::string> in_use;
    if (prune) {
      cri::ListContainersRequest creq;
      cri::ListContainersResponse cresp;
      BERTHCTL_CALL(c, runtime, ListContainers, creq, cresp);
      for (const auto& ct : cresp.containers()) {
        in_use.insert(ct.image_ref());
        if (auto img = image_status(c, ct.image().image())) in_use.insert(img->id());
      }
    }
    cri::ListImagesRequest req;
    cri::ListImagesResponse resp;
    BERTHCTL_CALL(c, images, ListImages, req, resp);
    refs.clear();
    for (const auto& img : resp.images())
      if (!in_use.count(img.id())) refs.push_back(img.id());
  } else if (refs.empty()) {
    throw std::invalid_argument("rmi: IMAGE-ID cannot be empty");
  }
  for (const auto& ref : refs) {
    auto img = image_status(c, ref);
    if (!img) throw std::runtime_error(fmt::format("no such image {}", ref));
    cri::RemoveImageRequest req;
    req.mutable_image()->set_image(img->id());
    cri::RemoveImageResponse resp;
    BERTHCTL_CALL(c, images, RemoveImage, req, resp);
    if (img->repo_tags().empty()) std::cout << "Deleted: " << img->id() << '\n';
    for (const auto& tag : img->repo_tags()) std::cout << "Deleted: " << tag << '\n';
  }
  return 0;
}

int cmd_inspecti(Client& c, const std::vector<std::string>& refs, const std::string& output) {
  Format f = parse_format(output == "table" ? "json" : output);
  for (const auto& ref : refs) {
    cri::ImageStatusResponse resp;
    if (!image_status(c, ref, true, &resp)) throw std::runtime_error(fmt::format("no such image {}", ref));
    print_status(std::cout, resp.image(), resp.info(), f);
  }
  return 0;
}

} // namespace berth::ctl
