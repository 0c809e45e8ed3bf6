/**
 * The allocator setting the gateway is started with (package.json's `start`, the Dockerfile, bench soak;
 * test/gateway-memory.test.ts keeps them equal). glibc reads it only when a process starts, so it lives in the
 * launchers, not in code.
 *
 * Why: each TLS connection holds a 64 KiB input buffer (Node's NodeBIO, sized by libuv's read hint), below glibc's
 * default mmap threshold, so tens of thousands of them, allocated and freed as devices reconnect and renew, sat in
 * the main arena among long-lived small allocations, where freed memory stays resident. From 64 KiB up, glibc maps
 * each allocation on its own and returns it to the system when freed: the 10,000-device soak ran ~170 MiB lower
 * (1,516 against 1,689 MiB after warm-up; 143 KiB per device against 160) at the same CPU. It did not remove the
 * slow RSS growth after warm-up (182 MiB/h against 207; docs/development.md, soak). Setting the threshold also turns
 * off glibc's dynamic threshold, which raises it past these buffers after the first large free. Harmless where glibc
 * is not the allocator (musl, macOS, Windows): the variable is ignored.
 */
export const GATEWAY_MALLOC_ENV = { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' } as const;
