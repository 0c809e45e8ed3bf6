/**
 * glibc's own count of a process's malloc memory, for the soak's leak goal (issue 21).
 *
 * Why: RSS alone cannot tell a leak from an allocator settling. In 10,000-device soaks the gateway's RSS kept rising
 * after warm-up while V8's heap stayed flat; the question was whether the rest was memory the gateway holds (a leak)
 * or free memory glibc keeps resident. Only glibc knows: `mallinfo2()` gives the bytes in use, the free bytes its
 * arenas keep, the arenas' size and the mmapped chunks. Node has no binding for it, hence a small preloaded library
 * (LD_PRELOAD) that starts one thread in the gateway and appends `mallinfo2()` to a file at an interval. The thread
 * allocates nothing itself (a stack buffer and write(2)), so it does not disturb what it counts.
 *
 * Built at run time with the machine's C compiler (Debian: gcc); a benchmark tool only, never part of the gateway.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SOURCE = String.raw`#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char path[4096];
static long interval_ms = 1000;

static void *probe(void *unused) {
  (void)unused;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  for (;;) {
    struct mallinfo2 m = mallinfo2();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[256];
    /* time (ms), arena (bytes from the system, non-mmapped), in use, free in arenas, mmapped chunks */
    int n = snprintf(line, sizeof line, "%lld %zu %zu %zu %zu\n", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                     m.arena, m.uordblks, m.fordblks, m.hblkhd);
    if (n > 0 && write(fd, line, (size_t)n) < 0) break;
    struct timespec wait = { interval_ms / 1000, (interval_ms % 1000) * 1000000 };
    nanosleep(&wait, NULL);
  }
  close(fd);
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  const char *file = getenv("WOTT_MALLOC_PROBE_FILE");
  if (!file || snprintf(path, sizeof path, "%s", file) >= (int)sizeof path) return;
  const char *ms = getenv("WOTT_MALLOC_PROBE_MS");
  if (ms && atol(ms) > 0) interval_ms = atol(ms);
  /* The gateway's own children (if any) are not probed, and never write into the same file. */
  unsetenv("WOTT_MALLOC_PROBE_FILE");
  unsetenv("LD_PRELOAD");
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_create(&thread, &attr, probe, NULL);
  pthread_attr_destroy(&attr);
}
`;

/** One reading of glibc's malloc, in bytes. */
export interface MallocInfo {
  t: number;
  /** Bytes the arenas took from the system (sbrk and their heaps), in use or not. */
  arena: number;
  /** Bytes in use in the arenas, plus the mmapped chunks (in use until freed, then unmapped at once). */
  inUse: number;
  /** Free bytes the arenas keep (resident or not). */
  free: number;
  /** Bytes in chunks mmapped on their own (at or above the mmap threshold). */
  mapped: number;
}

/**
 * Writes the probe's source into `dir` and compiles it. Returns the shared object's path, or why there is none (not
 * Linux with glibc, no C compiler): the soak then judges its leak goal on RSS alone, and says so.
 */
export function buildMallocProbe(dir: string): { path: string } | { missing: string } {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  if (process.platform !== 'linux' || !header?.glibcVersionRuntime) return { missing: 'not Linux with glibc' };
  const [major, minor] = header.glibcVersionRuntime.split('.').map(Number);
  if (major! < 2 || (major === 2 && minor! < 33)) return { missing: `glibc ${header.glibcVersionRuntime} has no mallinfo2 (2.33+)` };
  const source = join(dir, 'malloc-probe.c');
  const path = join(dir, 'malloc-probe.so');
  writeFileSync(source, SOURCE);
  const cc = spawnSync('cc', ['-O2', '-shared', '-fPIC', '-pthread', '-o', path, source], { encoding: 'utf8' });
  if (cc.error) return { missing: 'no C compiler (apt-get install gcc)' };
  if (cc.status !== 0 || !existsSync(path)) return { missing: `cc failed: ${cc.stderr.trim().split('\n').slice(-3).join(' ')}` };
  return { path };
}

/** The environment that makes a process load the probe and write to `file` every `intervalMs`. */
export function mallocProbeEnv(probe: string, file: string, intervalMs: number): Record<string, string> {
  return { LD_PRELOAD: probe, WOTT_MALLOC_PROBE_FILE: file, WOTT_MALLOC_PROBE_MS: String(intervalMs) };
}

/** Parses the probe's lines; a line cut short (being written) or malformed is skipped. */
export function parseMallocProbe(text: string): MallocInfo[] {
  const out: MallocInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length !== 5 || !f.every((x) => /^\d+$/.test(x))) continue;
    const [t, arena, used, free, mapped] = f.map(Number) as [number, number, number, number, number];
    out.push({ t, arena, inUse: used + mapped, free, mapped });
  }
  return out;
}

/** The probe's latest reading, if it has written one. */
export function readMallocProbe(file: string): MallocInfo | undefined {
  if (!existsSync(file)) return undefined;
  return parseMallocProbe(readFileSync(file, 'utf8')).at(-1);
}
