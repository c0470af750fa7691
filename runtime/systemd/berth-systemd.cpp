// berth-systemd: the D-Bus half of berth's systemd cgroup driver. berth is linked
// statically and libsystemd has no static library, so berth runs this small dynamic
// program for the few calls it needs:
//
//   berth-systemd start-scope --unit U --slice S [--description D] (--pid P | --hold)
//                             [--property NAME=SIG:VALUE]...
//       StartTransientUnit(U, "replace") with Slice, Description, PIDs and the
//       properties; waits for the job (JobRemoved, result "done") and prints the unit's
//       ControlGroup. With --hold, the scope's first process is this program itself: it
//       stays in the scope until its stdin is closed, so that berth can clone the
//       container's init into an existing cgroup (CLONE_INTO_CGROUP) before it leaves.
//   berth-systemd start-slice --unit U.slice [--description D] [--property ...]...
//       The same for a slice (berthlet's pod slices): no processes; a slice that is
//       already active gets the properties instead (SetUnitProperties).
//   berth-systemd stop --unit U                StopUnit and wait; a missing unit is fine
//   berth-systemd set-properties --unit U [--property NAME=SIG:VALUE]...
//       SetUnitProperties(U, runtime=true, ...)
//
// SIG is t (uint64, or "infinity"), b (true/false), s, ay (hex bytes) or au (u32 list).
// Errors: one line on stderr, exit 1 (2 for usage errors).
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/version.hpp"

namespace {

constexpr const char* kDest = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr uint64_t kJobTimeoutUsec = 30ull * 1000 * 1000; // as runc

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errno_text(int r) { return std::strerror(r < 0 ? -r : r); }

void check(int r, const std::string& what) {
  if (r < 0) throw Failure(what + ": " + errno_text(r));
}

// Owns an sd_bus_error; message() prefers D-Bus's text ("Unit x.scope already exists.").
struct BusError {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { sd_bus_error_free(&e); }
  std::string message(int r) const { return e.message ? e.message : errno_text(r); }
  bool is(const char* name) const { return sd_bus_error_has_name(&e, name); }
};

struct Bus {
  sd_bus* bus = nullptr;
  ~Bus() {
    if (bus) sd_bus_flush_close_unref(bus);
  }
};

struct Message {
  sd_bus_message* m = nullptr;
  ~Message() { sd_bus_message_unref(m); }
};

// systemd's private socket first (root only, works without dbus-daemon), then the bus.
void open_bus(Bus& b) {
  if (geteuid() == 0 && access("/run/systemd/private", F_OK) == 0) {
    sd_bus* bus = nullptr;
    if (sd_bus_new(&bus) >= 0 && sd_bus_set_address(bus, "unix:path=/run/systemd/private") >= 0 &&
        sd_bus_start(bus) >= 0) {
      b.bus = bus;
      return;
    }
    sd_bus_unref(bus);
  }
  check(sd_bus_open_system(&b.bus), "connect to the system bus");
}

struct Property {
  std::string name, sig, value;
};

Property parse_property(const std::string& arg) {
  auto eq = arg.find('='), colon = arg.find(':', eq == std::string::npos ? 0 : eq);
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos)
    throw Failure("bad --property \"" + arg + "\": want NAME=SIG:VALUE");
  return {arg.substr(0, eq), arg.substr(eq + 1, colon - eq - 1), arg.substr(colon + 1)};
}

uint64_t parse_u64(const std::string& text, const std::string& name) {
  if (text == "infinity") return UINT64_MAX;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end || errno || text[0] == '-') throw Failure(name + ": bad number \"" + text + "\"");
  return v;
}

void append_property(sd_bus_message* m, const Property& p) {
  std::string what = "property " + p.name;
  check(sd_bus_message_open_container(m, 'r', "sv"), what);
  check(sd_bus_message_append(m, "s", p.name.c_str()), what);
  check(sd_bus_message_open_container(m, 'v', p.sig.c_str()), what);
  if (p.sig == "t") {
    check(sd_bus_message_append(m, "t", parse_u64(p.value, p.name)), what);
  } else if (p.sig == "b") {
    if (p.value != "true" && p.value != "false") throw Failure(p.name + ": want true or false");
    check(sd_bus_message_append(m, "b", p.value == "true" ? 1 : 0), what);
  } else if (p.sig == "s") {
    check(sd_bus_message_append(m, "s", p.value.c_str()), what);
  } else if (p.sig == "ay") {
    std::vector<uint8_t> bytes;
    if (p.value.size() % 2) throw Failure(p.name + ": odd number of hex digits");
    for (size_t i = 0; i < p.value.size(); i += 2)
      bytes.push_back(static_cast<uint8_t>(std::stoul(p.value.substr(i, 2), nullptr, 16)));
    check(sd_bus_message_append_array(m, 'y', bytes.data(), bytes.size()), what);
  } else if (p.sig == "au") {
    std::vector<uint32_t> values;
    size_t start = 0;
    while (start <= p.value.size()) {
      size_t comma = p.value.find(',', start);
      std::string item = p.value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!item.empty()) values.push_back(static_cast<uint32_t>(parse_u64(item, p.name)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    check(sd_bus_message_append_array(m, 'u', values.data(), values.size() * sizeof(uint32_t)), what);
  } else {
    throw Failure(p.name + ": unsupported signature \"" + p.sig + "\"");
  }
  check(sd_bus_message_close_container(m), what);
  check(sd_bus_message_close_container(m), what);
}

// JobRemoved(u id, o job, s unit, s result) signals seen so far, by job path. They may
// arrive before the reply that names our job, so they are all kept.
std::map<std::string, std::string> g_finished_jobs;

int on_job_removed(sd_bus_message* m, void*, sd_bus_error*) {
  uint32_t id = 0;
  const char *job = nullptr, *unit = nullptr, *result = nullptr;
  if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) >= 0) g_finished_jobs[job] = result;
  return 0;
}

void watch_jobs(Bus& b) {
  check(sd_bus_match_signal(b.bus, nullptr, kDest, kPath, kManager, "JobRemoved", on_job_removed, nullptr),
        "subscribe to JobRemoved");
  // Needed on the bus (systemd only signals subscribers there); harmless on the private socket.
  BusError err;
  sd_bus_call_method(b.bus, kDest, kPath, kManager, "Subscribe", &err.e, nullptr, "");
}

std::string wait_job(Bus& b, const std::string& job) {
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    if (auto it = g_finished_jobs.find(job); it != g_finished_jobs.end()) return it->second;
    int r = sd_bus_process(b.bus, nullptr);
    check(r, "process D-Bus messages");
    if (r > 0) continue;
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t spent = static_cast<uint64_t>(now.tv_sec - start.tv_sec) * 1000000 +
                     static_cast<uint64_t>((now.tv_nsec - start.tv_nsec) / 1000);
    if (spent >= kJobTimeoutUsec) return "timeout";
    check(sd_bus_wait(b.bus, kJobTimeoutUsec - spent), "wait for D-Bus messages");
  }
}

void reset_failed(Bus& b, const std::string& unit) {
  BusError err;
  sd_bus_call_method(b.bus, kDest, kPath, kManager, "ResetFailedUnit", &err.e, nullptr, "s", unit.c_str());
}

bool is_slice(const std::string& unit) { return unit.size() > 6 && unit.ends_with(".slice"); }

std::string control_group(Bus& b, const std::string& unit) {
  BusError err;
  Message reply;
  int r = sd_bus_call_method(b.bus, kDest, kPath, kManager, "GetUnit", &err.e, &reply.m, "s", unit.c_str());
  if (r < 0) throw Failure("get unit " + unit + ": " + err.message(r));
  const char* object = nullptr;
  check(sd_bus_message_read(reply.m, "o", &object), "read GetUnit reply");
  char* cg = nullptr;
  BusError err2;
  const char* iface = is_slice(unit) ? "org.freedesktop.systemd1.Slice" : "org.freedesktop.systemd1.Scope";
  r = sd_bus_get_property_string(b.bus, kDest, object, iface, "ControlGroup", &err2.e, &cg);
  if (r < 0) throw Failure("get ControlGroup of " + unit + ": " + err2.message(r));
  std::string out = cg ? cg : "";
  free(cg);
  return out;
}

struct Args {
  std::string command, unit, slice, description;
  long pid = 0;
  bool hold = false;
  std::vector<Property> properties;
};

int set_properties(const Args& a);

int start_unit(const Args& a) {
  bool slice = a.command == "start-slice";
  if (slice && !is_slice(a.unit)) throw Failure("start-slice needs --unit NAME.slice");
  if (!slice && (a.unit.empty() || (a.pid <= 0 && !a.hold)))
    throw Failure("start-scope needs --unit and --pid or --hold");
  Bus b;
  open_bus(b);
  watch_jobs(b);
  uint32_t pid = static_cast<uint32_t>(a.hold ? getpid() : a.pid);
  std::string job;
  for (int attempt = 0;; attempt++) {
    Message m;
    check(sd_bus_message_new_method_call(b.bus, &m.m, kDest, kPath, kManager, "StartTransientUnit"),
          "StartTransientUnit");
    check(sd_bus_message_append(m.m, "ss", a.unit.c_str(), "replace"), "StartTransientUnit");
    check(sd_bus_message_open_container(m.m, 'a', "(sv)"), "StartTransientUnit");
    if (!a.slice.empty()) append_property(m.m, {"Slice", "s", a.slice});
    if (!a.description.empty()) append_property(m.m, {"Description", "s", a.description});
    if (!slice) append_property(m.m, {"PIDs", "au", std::to_string(pid)});
    for (auto& p : a.properties) append_property(m.m, p);
    check(sd_bus_message_close_container(m.m), "StartTransientUnit");
    check(sd_bus_message_append(m.m, "a(sa(sv))", 0), "StartTransientUnit");
    BusError err;
    Message reply;
    int r = sd_bus_call(b.bus, m.m, 0, &err.e, &reply.m);
    if (r < 0 && slice && err.is("org.freedesktop.systemd1.UnitExists")) {
      // berthlet restarted, or the pod's containers made the slice first.
      set_properties(a);
      std::printf("%s\n", control_group(b, a.unit).c_str());
      return 0;
    }
    if (r < 0 && err.is("org.freedesktop.systemd1.UnitExists") && attempt == 0) {
      reset_failed(b, a.unit); // a failed leftover of the same name blocks the name
      continue;
    }
    if (r < 0) throw Failure("start unit " + a.unit + ": " + err.message(r));
    const char* path = nullptr;
    check(sd_bus_message_read(reply.m, "o", &path), "read StartTransientUnit reply");
    job = path;
    break;
  }
  std::string result = wait_job(b, job);
  if (result != "done") {
    reset_failed(b, a.unit);
    throw Failure("error creating systemd unit `" + a.unit + "`: got `" + result + "`");
  }
  std::string cg = control_group(b, a.unit);
  std::printf("%s\n", cg.c_str());
  std::fflush(stdout);
  if (a.hold) {
    // Keep the scope populated until berth has put the container's init into it.
    sd_bus_flush_close_unref(b.bus);
    b.bus = nullptr;
    char buf[64];
    for (;;) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      break;
    }
  }
  return 0;
}

int stop(const Args& a) {
  if (a.unit.empty()) throw Failure("stop needs --unit");
  Bus b;
  open_bus(b);
  watch_jobs(b);
  BusError err;
  Message reply;
  int r = sd_bus_call_method(b.bus, kDest, kPath, kManager, "StopUnit", &err.e, &reply.m, "ss", a.unit.c_str(),
                             "replace");
  if (r < 0) {
    if (err.is("org.freedesktop.systemd1.NoSuchUnit")) return 0;
    throw Failure("stop unit " + a.unit + ": " + err.message(r));
  }
  const char* path = nullptr;
  check(sd_bus_message_read(reply.m, "o", &path), "read StopUnit reply");
  std::string result = wait_job(b, path);
  if (result == "timeout") throw Failure("timed out waiting for systemd to stop " + a.unit);
  if (result != "done") std::fprintf(stderr, "stopping unit %s: got `%s`; continuing\n", a.unit.c_str(), result.c_str());
  reset_failed(b, a.unit);
  return 0;
}

int set_properties(const Args& a) {
  if (a.unit.empty()) throw Failure("set-properties needs --unit");
  Bus b;
  open_bus(b);
  Message m;
  check(sd_bus_message_new_method_call(b.bus, &m.m, kDest, kPath, kManager, "SetUnitProperties"),
        "SetUnitProperties");
  check(sd_bus_message_append(m.m, "sb", a.unit.c_str(), 1), "SetUnitProperties");
  check(sd_bus_message_open_container(m.m, 'a', "(sv)"), "SetUnitProperties");
  for (auto& p : a.properties) append_property(m.m, p);
  check(sd_bus_message_close_container(m.m), "SetUnitProperties");
  BusError err;
  int r = sd_bus_call(b.bus, m.m, 0, &err.e, nullptr);
  if (r < 0) throw Failure("set properties of " + a.unit + ": " + err.message(r));
  return 0;
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) throw std::invalid_argument("missing command");
  a.command = argv[1];
  for (int i = 2; i < argc; i++) {
    std::string opt = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(opt + " needs a value");
      return argv[++i];
    };
    if (opt == "--unit") a.unit = value();
    else if (opt == "--slice") a.slice = value();
    else if (opt == "--description") a.description = value();
    else if (opt == "--pid") a.pid = std::strtol(value().c_str(), nullptr, 10);
    else if (opt == "--hold") a.hold = true;
    else if (opt == "--property") a.properties.push_back(parse_property(value()));
    else throw std::invalid_argument("unknown option " + opt);
  }
  return a;
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::fputs(berth::version_text("berth-systemd").c_str(), stdout);
    return 0;
  }
  Args a;
  try {
    a = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "berth-systemd: %s\nusage: berth-systemd start-scope|start-slice|stop|set-properties --unit UNIT [options]\n",
                 e.what());
    return 2;
  }
  try {
    if (a.command == "start-scope" || a.command == "start-slice") return start_unit(a);
    if (a.command == "stop") return stop(a);
    if (a.command == "set-properties") return set_properties(a);
    std::fprintf(stderr, "berth-systemd: unknown command %s\n", a.command.c_str());
    return 2;
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
