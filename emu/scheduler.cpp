// The emulated device's execution engine. A launch runs its blocks one after another on the
// calling host thread; each CUDA thread of a block runs on a fiber (Boost.Context's fcontext), and
// fibers switch only at __syncthreads and warp collectives. Between those points the threads of a
// block run one at a time in the selected schedule's order (forward, reverse or a random
// permutation), so a read of another thread's unsynchronised write sees a schedule-dependent
// value. A thread that finishes hands its fiber to the next thread that has not started, so a
// block without barriers runs all its threads on one fiber.
//
// Under ThreadSanitizer this file is compiled without instrumentation (its bookkeeping is not a
// race); each CUDA thread index then owns one fiber and one TSan fiber, barriers and __syncwarp are
// release/acquire, and consecutive blocks are ordered, so races between the threads of a block
// (shared or global memory) are reported.
#include "emu/cuda_emu.h"
#include "emu/emu_internal.h"
#include "emu/launch_emulated.h"
#include "emu/schedule.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

#if !defined(GRADACCUM_EMU_ASAN) && defined(__SANITIZE_ADDRESS__)
#define GRADACCUM_EMU_ASAN 1
#endif
#if !defined(GRADACCUM_EMU_ASAN) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRADACCUM_EMU_ASAN 1
#endif
#endif
#if defined(GRADACCUM_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(GRADACCUM_EMU_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace gradaccum::emu::detail {
ThreadInfo* g_thread = nullptr;
BlockInfo g_block{};
}  // namespace gradaccum::emu::detail

namespace gradaccum::emu {
namespace {

namespace fc = boost::context::detail;

#if defined(GRADACCUM_EMU_TSAN)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
// A finished thread's fiber runs the next unstarted thread (not under TSan: there every thread
// index needs its own fiber, or TSan would take the two threads for one).
constexpr bool kReuseFibers = !kTsan;

struct KernelFault {
  std::string message;
};

struct Context {
  fc::fcontext_t fctx = nullptr;
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;
};

enum class Status : unsigned char { Unstarted, Ready, Running, Blocked, Done };
enum class Wait : unsigned char { None, Barrier, Warp };

struct Worker;

struct Thread {
  detail::ThreadInfo info{};
  Status status = Status::Unstarted;
  Wait wait = Wait::None;
  Worker* worker = nullptr;
  // The warp collective it waits in.
  const char* what = nullptr;
  unsigned mask = 0;
  unsigned bytes = 0;
  const void* mine = nullptr;
  void* all = nullptr;
};

struct Worker : Context {
  unsigned char* memory = nullptr;  // guard page, then the stack
  std::size_t memory_bytes = 0;
  bool fresh = true;         // needs make_fcontext before it runs
  Thread* thread = nullptr;  // the thread it runs; nullptr when free
};

struct Warp {
  unsigned existing = 0;  // lanes that exist (the last warp of a block may be partial)
  unsigned arrived = 0;   // lanes waiting in a collective
  unsigned exited = 0;
};

struct Engine {
  std::mutex mutex;  // one launch at a time (and the settings below)
  bool configured = false;
  bool schedule_set = false;
  Schedule schedule;
  std::size_t stack_bytes = 0;
  std::size_t page = 4096;
  Stats stats;

  Context main;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<Worker*> free_workers;
  Worker* entering = nullptr;

  const detail::KernelLaunch* kernel = nullptr;
  std::vector<Thread> threads;
  std::vector<unsigned> order;
  std::vector<Warp> warps;
  unsigned nthreads = 0;
  unsigned cursor = 0;  // position in `order` of the thread picked last
  unsigned done = 0;
  std::uint64_t launch_seq = 0;
  std::uint64_t block_seq = 0;
  std::uint64_t phase = 0;

  unsigned bar_waiting = 0;
  const char* bar_file = nullptr;
  int bar_line = 0;
  int bar_kind = 0;
  int bar_accum = 0;
  int bar_result = 0;

  bool aborted = false;
  std::string error;

  // ThreadSanitizer synchronisation objects (their addresses).
  char bar_sync = 0;
  char block_sync[2] = {0, 0};
  char warp_sync[32] = {};
  char leave_sync = 0;
};

Engine g;

void tsan_acquire(void* address) {
#if defined(GRADACCUM_EMU_TSAN)
  __tsan_acquire(address);
#else
  (void)address;
#endif
}
void tsan_release(void* address) {
#if defined(GRADACCUM_EMU_TSAN)
  __tsan_release(address);
#else
  (void)address;
#endif
}

// Copies between the lanes' buffers in a warp collective. Under TSan a plain loop: memcpy would
// be intercepted and every exchange reported as a race between the lanes.
void exchange_copy(void* dst, const void* src, std::size_t bytes) {
  if (kTsan) {
    auto* d = static_cast<volatile unsigned char*>(dst);
    const auto* s = static_cast<const volatile unsigned char*>(src);
    for (std::size_t i = 0; i < bytes; ++i)
      d[i] = s[i];
  } else {
    std::memcpy(dst, src, bytes);
  }
}

std::string coords(const uint3& v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string coords(const dim3& v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}
const char* barrier_name(int kind) {
  switch (kind) {
    case 1:
      return "__syncthreads_count";
    case 2:
      return "__syncthreads_and";
    case 3:
      return "__syncthreads_or";
    default:
      return "__syncthreads";
  }
}

// ---- settings ----

Schedule schedule_from_environment() {
  const char* text = std::getenv("GRADACCUM_EMU_SCHEDULE");
  if (text == nullptr || *text == '\0') return Schedule{};
  try {
    return parse_schedule(text);
  } catch (const Error& e) {
    throw Error(std::string("GRADACCUM_EMU_SCHEDULE: ") + e.what(), __FILE__, __LINE__);
  }
}

void configure() {  // under g.mutex
  if (g.configured) return;
  g.page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  unsigned long long kib = 256;
  if (const char* text = std::getenv("GRADACCUM_EMU_STACK_KB"); text != nullptr && *text != '\0') {
    char* end = nullptr;
    kib = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || kib < 16 || kib > (1u << 20)) {
      throw Error(std::string("GRADACCUM_EMU_STACK_KB=") + text +
                      ": expected the fiber stack size in KiB, from 16 to 1048576",
                  __FILE__, __LINE__);
    }
  }
  g.stack_bytes = (static_cast<std::size_t>(kib) * 1024 + g.page - 1) / g.page * g.page;
  if (!g.schedule_set) g.schedule = schedule_from_environment();
  g.configured = true;
}

// ---- fiber stack overflow: a clear message instead of a bare segmentation fault ----

#if !defined(GRADACCUM_EMU_ASAN) && !defined(GRADACCUM_EMU_TSAN)
struct sigaction g_previous_segv;
bool g_segv_installed = false;

void on_segv(int signal, siginfo_t* info, void* context) {
  const auto* address = static_cast<const unsigned char*>(info->si_addr);
  const unsigned char* sp = address;
#if defined(__x86_64__)
  sp = reinterpret_cast<const unsigned char*>(
      static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RSP]);
#endif
  for (const auto& w : g.workers) {
    // The guard page was hit, or the stack pointer went below the stack's start.
    const unsigned char* start = w->memory + g.page;
    if ((address >= w->memory && address < start) ||
        (sp < start && sp + (std::size_t{64} << 20) >= start)) {
      static const char message[] =
          "gradaccum emulator: a kernel thread overflowed its fiber stack (large local arrays or "
          "deep recursion); raise GRADACCUM_EMU_STACK_KB (default 256)\n";
      (void)!write(2, message, sizeof message - 1);
      break;
    }
  }
  // Hand the fault on: the previous handler, or the default action, when the access repeats.
  sigaction(SIGSEGV, &g_previous_segv, nullptr);
  (void)signal;
  (void)context;
}

void install_overflow_handler() {
  thread_local bool alt_stack = false;
  if (!alt_stack) {
    const std::size_t bytes = 64 * 1024;
    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory != MAP_FAILED) {
      stack_t ss{};
      ss.ss_sp = memory;
      ss.ss_size = bytes;
      stack_t old{};
      if (sigaltstack(nullptr, &old) == 0 && (old.ss_flags & SS_DISABLE) != 0) {
        sigaltstack(&ss, nullptr);
      } else {
        munmap(memory, bytes);
      }
    }
    alt_stack = true;
  }
  if (!g_segv_installed) {
    struct sigaction action {};
    action.sa_sigaction = &on_segv;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
    g_segv_installed = true;
  }
}
#else
void install_overflow_handler() {}
#endif

// ---- fibers ----

void landed(fc::transfer_t t, Context* self) {
  Context* previous = static_cast<Context*>(t.data);
#if defined(GRADACCUM_EMU_ASAN)
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, &bottom, &size);
  if (previous == &g.main) {
    g.main.stack_bottom = bottom;
    g.main.stack_size = size;
  }
#else
  (void)self;
#endif
  previous->fctx = t.fctx;
}

void jump(Context* from, Context* to) {
  ++g.stats.fiber_switches;
  // Everything a fiber did before it left is ordered before the host's return from the launch
  // (even when the launch fails and the fiber never runs again); no thread acquires this.
  tsan_release(&g.leave_sync);
#if defined(GRADACCUM_EMU_ASAN)
  __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_bottom, to->stack_size);
#endif
#if defined(GRADACCUM_EMU_TSAN)
  __tsan_switch_to_fiber(to->tsan_fiber, 1 /* __tsan_switch_to_fiber_no_sync */);
#endif
  const fc::transfer_t t = fc::jump_fcontext(to->fctx, from);
  landed(t, from);
}

Worker* new_worker() {
  auto w = std::make_unique<Worker>();
  const std::size_t bytes = g.page + g.stack_bytes;
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) {
    throw Error("emulator: cannot map a fiber stack of " + std::to_string(bytes) + " bytes",
                __FILE__, __LINE__);
  }
  if (mprotect(memory, g.page, PROT_NONE) != 0) {  // the guard page below the stack
    munmap(memory, bytes);
    throw Error("emulator: cannot protect a fiber stack's guard page", __FILE__, __LINE__);
  }
  w->memory = static_cast<unsigned char*>(memory);
  w->memory_bytes = bytes;
  w->stack_bottom = w->memory + g.page;
  w->stack_size = g.stack_bytes;
#if defined(GRADACCUM_EMU_TSAN)
  w->tsan_fiber = __tsan_create_fiber(0);
#endif
  g.workers.push_back(std::move(w));
  return g.workers.back().get();
}

// The next thread to run after the last pick, in schedule order: one that is ready or has not
// started. nullptr when none can run (the block is over, or stuck).
Thread* pick_next() {
  const unsigned n = g.nthreads;
  unsigned pos = g.cursor;
  for (unsigned i = 0; i < n; ++i) {
    pos = pos + 1 == n ? 0 : pos + 1;
    Thread* t = &g.threads[g.order[pos]];
    if (t->status == Status::Ready || t->status == Status::Unstarted) {
      g.cursor = pos;
      return t;
    }
  }
  return nullptr;
}

void worker_entry(fc::transfer_t t);

Worker* take_worker(const Thread* t) {
  if (kTsan) return g.workers[t->info.linear].get();
  Worker* w = g.free_workers.back();
  g.free_workers.pop_back();
  return w;
}

// Leaves `from` for `next` (or for the host when next is nullptr); returns when `from` is resumed.
void switch_to(Context* from, Thread* next) {
  if (next == nullptr) {
    jump(from, &g.main);
    return;
  }
  if (next->status == Status::Unstarted) {
    Worker* w = take_worker(next);
    w->thread = next;
    next->worker = w;
    if (w->fresh) {
      w->fresh = false;
      w->fctx = fc::make_fcontext(w->memory + w->memory_bytes, g.stack_bytes, &worker_entry);
      g.entering = w;
    }
  }
  next->status = Status::Running;
  detail::g_thread = &next->info;
  jump(from, next->worker);
}

// The running thread `me` (Blocked, or Ready after releasing a barrier) lets others run.
void wait_turn(Thread* me) {
  Thread* next = pick_next();
  if (next == me) {
    me->status = Status::Running;
    return;
  }
  switch_to(me->worker, next);
}

Thread* current(const char* what) {
  if (detail::g_thread == nullptr) {
    throw Error(std::string(what) + " called outside a kernel", __FILE__, __LINE__);
  }
  return &g.threads[detail::g_thread->linear];
}

void run_thread(Worker* w) {
  tsan_acquire(&g.block_sync[(g.block_seq + 1) & 1]);
  bool failed = false;
  try {
    g.kernel->invoke(g.kernel->closure);
  } catch (const KernelFault& fault) {
    g.error = fault.message;
    failed = true;
  } catch (const std::exception& e) {
    g.error = std::string("the kernel threw: ") + e.what();
    failed = true;
  } catch (...) {
    g.error = "the kernel threw an exception";
    failed = true;
  }
  if (failed) {
    g.error = "thread " + coords(w->thread->info.idx) + ": " + g.error;
    g.aborted = true;
    jump(w, &g.main);  // never resumed: the launch resets this fiber
  }
  tsan_release(&g.block_sync[g.block_seq & 1]);
}

void finish_thread(Worker* w) {
  Thread* th = w->thread;
  th->status = Status::Done;
  th->worker = nullptr;
  ++g.done;
  g.warps[th->info.warp].exited |= 1u << th->info.lane;
  Thread* next = pick_next();
  if (kReuseFibers && next != nullptr && next->status == Status::Unstarted) {
    w->thread = next;  // go on with the next thread on this very fiber
    next->worker = w;
    next->status = Status::Running;
    detail::g_thread = &next->info;
    return;
  }
  w->thread = nullptr;
  if (!kTsan) g.free_workers.push_back(w);
  switch_to(w, next);  // resumed with a new thread to run
}

void worker_entry(fc::transfer_t t) {
  Worker* self = g.entering;
  landed(t, self);
  for (;;) {
    run_thread(self);
    finish_thread(self);
  }
}

// After a failed block: fibers stuck inside the kernel start afresh next time.
void reset_stuck_workers() {
  for (auto& w : g.workers) {
    if (w->thread == nullptr) continue;
    w->thread = nullptr;
    w->fresh = true;
#if defined(GRADACCUM_EMU_ASAN)
    __asan_unpoison_memory_region(w->stack_bottom, w->stack_size);
#endif
#if defined(GRADACCUM_EMU_TSAN)
    __tsan_destroy_fiber(w->tsan_fiber);
    w->tsan_fiber = __tsan_create_fiber(0);
#endif
    if (!kTsan) g.free_workers.push_back(w.get());
  }
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void set_order() {
  const unsigned n = g.nthreads;
  switch (g.schedule.kind) {
    case ScheduleKind::Forward:
      for (unsigned i = 0; i < n; ++i)
        g.order[i] = i;
      break;
    case ScheduleKind::Reverse:
      for (unsigned i = 0; i < n; ++i)
        g.order[i] = n - 1 - i;
      break;
    case ScheduleKind::Random: {
      for (unsigned i = 0; i < n; ++i)
        g.order[i] = i;
      std::uint64_t state =
          mix(mix(mix(g.schedule.seed) ^ g.launch_seq) ^ (g.block_seq * 0x100000001b3ull)) ^
          g.phase;
      for (unsigned i = n - 1; i > 0; --i) {
        state = mix(state);
        const unsigned j = static_cast<unsigned>(state % (i + 1));
        std::swap(g.order[i], g.order[j]);
      }
      break;
    }
  }
  g.cursor = n - 1;  // the next pick is order[0]
}

std::string describe_wait(const Thread& t) {
  if (t.status == Status::Done) return "has exited";
  if (t.wait == Wait::Barrier) {
    return std::string("waits at ") + barrier_name(g.bar_kind) + " (" + g.bar_file + ":" +
           std::to_string(g.bar_line) + ")";
  }
  if (t.wait == Wait::Warp) return std::string("waits in ") + t.what + "(mask " + hex(t.mask) + ")";
  return "is runnable";
}

std::string diagnose() {
  std::ostringstream os;
  const unsigned n = g.nthreads;
  if (g.bar_waiting > 0 && g.bar_waiting + g.done == n) {
    const Thread* gone = nullptr;
    for (const Thread& t : g.threads) {
      if (t.status == Status::Done) {
        gone = &t;
        break;
      }
    }
    os << "divergent barrier: " << g.bar_waiting << " of " << n << " threads wait at "
       << barrier_name(g.bar_kind) << " (" << g.bar_file << ":" << g.bar_line << ") but " << g.done
       << " exited without reaching it (thread " << coords(gone->info.idx)
       << " among them); every thread of the block must reach a __syncthreads";
    return os.str();
  }
  os << "deadlock: no thread of the block can go on.";
  int reported = 0;
  for (const Thread& t : g.threads) {
    if (t.wait != Wait::Warp || reported >= 4) continue;
    ++reported;
    const Warp& warp = g.warps[t.info.warp];
    const unsigned missing = t.mask & warp.existing & ~warp.arrived;
    os << " Thread " << coords(t.info.idx) << " (warp " << t.info.warp << ", lane " << t.info.lane
       << ") waits in " << t.what << "(mask " << hex(t.mask) << ")";
    if (missing != 0) {
      const unsigned lane = static_cast<unsigned>(__builtin_ctz(missing));
      const Thread& other = g.threads[t.info.warp * 32 + lane];
      os << " for lane " << lane << ", which " << describe_wait(other) << ".";
    } else {
      os << ".";
    }
  }
  if (g.bar_waiting > 0) {
    os << " " << g.bar_waiting << " of " << n << " threads wait at " << barrier_name(g.bar_kind)
       << " (" << g.bar_file << ":" << g.bar_line << ").";
  }
  return os.str();
}

void run_block(uint3 block_idx) {
  detail::g_block.idx = block_idx;
  for (Thread& t : g.threads) {
    t.status = Status::Unstarted;
    t.wait = Wait::None;
    t.worker = nullptr;
  }
  for (Warp& w : g.warps) {
    w.arrived = 0;
    w.exited = 0;
  }
  g.done = 0;
  g.bar_waiting = 0;
  g.phase = 0;
  g.aborted = false;
  ++g.block_seq;
  set_order();
  ++g.stats.blocks;
  g.stats.threads += g.nthreads;

  switch_to(&g.main, pick_next());  // back here when no thread of the block can run
  tsan_acquire(&g.leave_sync);
  detail::g_thread = nullptr;

  if (g.aborted || g.done != g.nthreads) {
    const std::string why = g.aborted ? g.error : diagnose();
    reset_stuck_workers();
    const detail::KernelLaunch& k = *g.kernel;
    ::gradaccum::detail::throw_error(
        k.file, k.line, "",
        std::string("kernel ") + k.name + " failed in block " + coords(block_idx) + " of grid " +
            coords(detail::g_block.grid) + ", block " + coords(detail::g_block.dim) +
            " (emulated device, schedule " + to_string(g.schedule) + "): " + why);
  }
}

}  // namespace

// ---- device-side entry points (emu/cuda_emu.h) ----

namespace detail {

void fault(const std::string& message) {
  if (g_thread == nullptr) throw Error("emulated device: " + message, __FILE__, __LINE__);
  throw KernelFault{message};
}

int block_barrier(const char* file, int line, int kind, int predicate) {
  Thread* me = current(barrier_name(kind));
  const char* name = barrier_name(kind);
  if (g.done > 0) {
    const Thread* gone = nullptr;
    for (const Thread& t : g.threads) {
      if (t.status == Status::Done) {
        gone = &t;
        break;
      }
    }
    fault(std::string("divergent barrier: reaches ") + name + " (" + file + ":" +
          std::to_string(line) + ") after thread " + coords(gone->info.idx) +
          " of the block exited without reaching it; every thread of the block must reach a "
          "__syncthreads");
  }
  if (g.bar_waiting == 0) {
    g.bar_file = file;
    g.bar_line = line;
    g.bar_kind = kind;
    g.bar_accum = 0;
  } else if (g.bar_line != line || g.bar_kind != kind ||
             (g.bar_file != file && std::strcmp(g.bar_file, file) != 0)) {
    fault(std::string("divergent barrier: waits at ") + name + " (" + file + ":" +
          std::to_string(line) + ") while " + std::to_string(g.bar_waiting) +
          " threads of the block wait at " + barrier_name(g.bar_kind) + " (" + g.bar_file + ":" +
          std::to_string(g.bar_line) + ")");
  }
  if (predicate != 0) ++g.bar_accum;
  tsan_release(&g.bar_sync);
  ++g.bar_waiting;
  me->wait = Wait::Barrier;
  if (g.bar_waiting == g.nthreads) {  // everyone is here: release the block
    g.bar_result = g.bar_accum;
    g.bar_waiting = 0;
    ++g.phase;
    for (Thread& t : g.threads) {
      t.wait = Wait::None;
      t.status = Status::Ready;
    }
    if (g.schedule.kind == ScheduleKind::Random) {
      set_order();
    } else {
      g.cursor = g.nthreads - 1;  // start the new phase from the schedule's first thread
    }
  } else {
    me->status = Status::Blocked;
  }
  wait_turn(me);
  tsan_acquire(&g.bar_sync);
  switch (kind) {
    case 1:
      return g.bar_result;
    case 2:
      return g.bar_result == static_cast<int>(g.nthreads) ? 1 : 0;
    case 3:
      return g.bar_result > 0 ? 1 : 0;
    default:
      return 0;
  }
}

unsigned warp_gather(const char* what, unsigned mask, const void* mine, unsigned bytes, void* all,
                     bool sync) {
  Thread* me = current(what);
  const unsigned lane = me->info.lane;
  const unsigned warp_index = me->info.warp;
  Warp& warp = g.warps[warp_index];
  const unsigned bit = 1u << lane;
  if ((mask & bit) == 0) {
    fault(std::string(what) + ": lane " + std::to_string(lane) + " passes mask " + hex(mask) +
          ", which does not include itself");
  }
  const unsigned need = mask & warp.existing;
  if ((need & warp.exited) != 0) {
    const unsigned gone = static_cast<unsigned>(__builtin_ctz(need & warp.exited));
    fault(std::string(what) + "(mask " + hex(mask) + ") in warp " + std::to_string(warp_index) +
          ": lane " + std::to_string(gone) +
          " named in the mask has already exited (undefined on a GPU)");
  }
  const unsigned base = warp_index * 32;
  for (unsigned m = warp.arrived & need; m != 0; m &= m - 1) {
    const Thread& other = g.threads[base + static_cast<unsigned>(__builtin_ctz(m))];
    if (other.mask != mask || other.bytes != bytes ||
        (other.what != what && std::strcmp(other.what, what) != 0)) {
      fault(std::string("divergent warp collective: lane ") + std::to_string(lane) + " calls " +
            what + "(mask " + hex(mask) + ") while lane " + std::to_string(other.info.lane) +
            " waits in " + other.what + "(mask " + hex(other.mask) + ")");
    }
  }
  me->what = what;
  me->mask = mask;
  me->bytes = bytes;
  me->mine = mine;
  me->all = all;
  if (sync) tsan_release(&g.warp_sync[warp_index % 32]);
  warp.arrived |= bit;
  if ((warp.arrived & need) == need) {  // the last one: exchange and release the others
    if (bytes != 0) {
      for (unsigned mi = need; mi != 0; mi &= mi - 1) {
        auto* out = static_cast<unsigned char*>(g.threads[base + __builtin_ctz(mi)].all);
        for (unsigned mj = need; mj != 0; mj &= mj - 1) {
          const unsigned j = static_cast<unsigned>(__builtin_ctz(mj));
          exchange_copy(out + static_cast<std::size_t>(j) * bytes, g.threads[base + j].mine, bytes);
        }
      }
    }
    warp.arrived &= ~need;
    for (unsigned m = need & ~bit; m != 0; m &= m - 1) {
      Thread& other = g.threads[base + static_cast<unsigned>(__builtin_ctz(m))];
      other.wait = Wait::None;
      other.status = Status::Ready;
    }
  } else {
    me->wait = Wait::Warp;
    me->status = Status::Blocked;
    wait_turn(me);
  }
  if (sync) tsan_acquire(&g.warp_sync[warp_index % 32]);
  return need;
}

unsigned active_mask() {
  const Thread* me = current("__activemask");
  const Warp& warp = g.warps[me->info.warp];
  return warp.existing & ~warp.exited;
}

long long clock_ticks() {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count());
}

void run_launch(const KernelLaunch& launch, dim3 grid, dim3 block, std::size_t shared_bytes,
                cudaStream_t stream) {
  (void)stream;  // launches run synchronously, in order
  std::lock_guard<std::mutex> lock(g.mutex);
  configure();
  install_overflow_handler();

  const std::size_t shared_limit = max_dynamic_shared_bytes(launch.kernel);
  if (shared_bytes > shared_limit) {
    ::gradaccum::detail::throw_error(
        launch.file, launch.line, "",
        std::string("invalid launch of ") + launch.name + ": " + std::to_string(shared_bytes) +
            " bytes of dynamic shared memory, but the kernel may use " +
            std::to_string(shared_limit) +
            " (beyond 48 KiB a GPU needs cudaFuncSetAttribute(kernel, "
            "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first)");
  }

  const unsigned n = block.x * block.y * block.z;
  g.nthreads = n;
  g.threads.assign(n, Thread{});
  g.order.assign(n, 0);
  g.warps.assign((n + 31) / 32, Warp{});
  for (unsigned i = 0; i < n; ++i) {
    ThreadInfo& info = g.threads[i].info;
    info.idx = make_uint3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
    info.linear = i;
    info.lane = i % 32;
    info.warp = i / 32;
    g.warps[info.warp].existing |= 1u << info.lane;
  }
  while (g.workers.size() < n)
    g.free_workers.push_back(new_worker());
  if (kTsan) g.free_workers.clear();

  // Dynamic shared memory: its own allocation (AddressSanitizer sees overruns), filled with a
  // NaN pattern like the garbage a GPU leaves there.
  void* shared = nullptr;
  if (shared_bytes > 0) {
    if (posix_memalign(&shared, 128, shared_bytes) != 0) {
      ::gradaccum::detail::throw_error(
          launch.file, launch.line, "",
          "cannot allocate " + std::to_string(shared_bytes) + " bytes of shared memory");
    }
    std::memset(shared, 0xff, shared_bytes);
  }
  g_block.dim = block;
  g_block.grid = grid;
  g_block.dynamic_shared = static_cast<unsigned char*>(shared);
  g_block.dynamic_shared_bytes = shared_bytes;
  g.kernel = &launch;
  ++g.launch_seq;
  ++g.stats.launches;
#if defined(GRADACCUM_EMU_TSAN)
  g.main.tsan_fiber = __tsan_get_current_fiber();
#endif
  tsan_release(&g.block_sync[0]);  // the host's writes before the launch
  tsan_release(&g.block_sync[1]);

  struct Cleanup {
    void* shared;
    ~Cleanup() {
      tsan_acquire(&g.block_sync[0]);  // the kernel's writes, for the host
      tsan_acquire(&g.block_sync[1]);
      tsan_acquire(&g.leave_sync);
      g_thread = nullptr;
      g_block.dynamic_shared = nullptr;
      g_block.dynamic_shared_bytes = 0;
      g.kernel = nullptr;
      std::free(shared);
    }
  } cleanup{shared};

  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x)
        run_block(make_uint3(x, y, z));
    }
  }
}

}  // namespace detail

// ---- public settings (emu/schedule.h) ----

Schedule parse_schedule(const std::string& text) {
  if (text == "forward") return Schedule{ScheduleKind::Forward, 0};
  if (text == "reverse") return Schedule{ScheduleKind::Reverse, 0};
  if (text == "random") return Schedule{ScheduleKind::Random, 0};
  if (text.rfind("random:", 0) == 0) {
    const std::string digits = text.substr(7);
    char* end = nullptr;
    const unsigned long long seed = std::strtoull(digits.c_str(), &end, 10);
    if (!digits.empty() && digits[0] != '-' && end != nullptr && *end == '\0') {
      return Schedule{ScheduleKind::Random, seed};
    }
  }
  throw Error("unknown emulator schedule '" + text +
                  "': expected forward, reverse or random:SEED (SEED a decimal integer)",
              __FILE__, __LINE__);
}

std::string to_string(const Schedule& schedule) {
  switch (schedule.kind) {
    case ScheduleKind::Reverse:
      return "reverse";
    case ScheduleKind::Random:
      return "random:" + std::to_string(schedule.seed);
    case ScheduleKind::Forward:
      break;
  }
  return "forward";
}

void set_schedule(const Schedule& schedule) {
  std::lock_guard<std::mutex> lock(g.mutex);
  g.schedule = schedule;
  g.schedule_set = true;
}

void set_schedule(const std::string& text) {
  set_schedule(parse_schedule(text));
}

Schedule current_schedule() {
  std::lock_guard<std::mutex> lock(g.mutex);
  if (!g.schedule_set && !g.configured) return schedule_from_environment();
  return g.schedule;
}

Stats stats() {
  std::lock_guard<std::mutex> lock(g.mutex);
  return g.stats;
}

std::size_t stack_kib() {
  std::lock_guard<std::mutex> lock(g.mutex);
  configure();
  return g.stack_bytes / 1024;
}

}  // namespace gradaccum::emu
