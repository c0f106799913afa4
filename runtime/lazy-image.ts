// The lazy image: a remote image read as a block device before it is downloaded. Reads of chunks
// already in the local copy come from the file; a read that touches missing chunks fetches them (one
// Range request per run of missing chunks), writes them into the file, and answers from there; a
// hydrator copies every other chunk in the background, in order, until the local copy is complete
// and the network is no longer needed. The file is the cache: nothing is kept in memory beyond the
// fetches in flight.
//
// Reads the system waits for go first: the hydrator starts no batch while a demand read waits for
// the server, and a demand read never queues behind a batch (it makes its own request, or shares the
// fetch of a chunk already on its way). Read-ahead after a demand read is a request of its own, so
// the read is answered as soon as its own bytes are here.
//
// Outages: a demand read retries with backoff for outageLimitMs, then fails (EIO for the kernel),
// and from then on the server counts as gone: reads of missing chunks make one attempt each and fail
// at once, until any request succeeds. The hydrator never gives up on the server. An image that
// changed on the server, or a local copy that cannot be written, is fatal.
import type { FileHandle } from "node:fs/promises";
import { backoffDelay, sleep, type BackoffPolicy } from "./backoff.ts";
import { ChunkMap } from "./chunk-map.ts";
import { formatBytes } from "./format-bytes.ts";
import { HttpError } from "./http-source.ts";
import { ImageChangedError } from "./range-reader.ts";

/** The remote image: a range reader (range-reader.ts). */
export interface RangeSource {
  readonly size: number;
  /** For log lines (without credentials). */
  readonly url?: string;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

export interface LazyImageOptions {
  source: RangeSource;
  /** The local copy, opened read-write and already `size` bytes long (sparse). */
  file: FileHandle;
  /** The unit of fetching and of "is local" bookkeeping: a power of two, at least 4096 (default 256 KiB). */
  chunkBytes?: number;
  /** Missing chunks fetched after those of a demand read (default 1 MiB). */
  readAheadBytes?: number;
  /** Most bytes of one hydration request (default 4 MiB). */
  hydrateBatchBytes?: number;
  /** How long a demand read waits for a failing server before it fails, in ms (default 300 s). */
  outageLimitMs?: number;
  /** Delays between attempts (default base 1 s, cap 10 s). */
  backoff?: BackoffPolicy;
  /** One line for the journal. */
  log(line: string): void;
}

export interface LazyImageProgress {
  size: number;
  /** Bytes in the local copy. */
  localBytes: number;
  /** Bytes received from the server (demand reads, read-ahead and hydration). */
  fetchedBytes: number;
  /** Calls of read(). */
  reads: number;
  /** Reads that had to wait for chunks from the server. */
  demandReads: number;
  /** Every chunk is local and flushed. */
  complete: boolean;
  /** The server has not answered for outageLimitMs: reads of missing chunks fail at once. */
  serverGone: boolean;
}

export interface LazyImage {
  /** Bytes `offset` to `offset + length - 1`, from the local copy, fetching what is missing first. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Starts the background copy of every missing chunk, from byte 0 on (once; later calls do nothing). */
  startHydration(): void;
  /**
   * Resolves when every chunk is local and flushed (fdatasync); rejects only on what ends the lazy
   * image: the image changed on the server (ImageChangedError), or the local copy cannot be written.
   * Never settles after stop().
   */
  readonly completion: Promise<void>;
  progress(): LazyImageProgress;
  /** Aborts the fetches in flight and the hydrator; reads fail from now on. */
  stop(): Promise<void>;
}

/** The local copy failed: a write, a read or the flush. */
class LocalCopyError extends Error {
  constructor(what: string, cause: unknown) {
    super(`${what} the local copy of the image: ${(cause as Error).message}`, { cause });
    this.name = "LocalCopyError";
  }
}

/**
 * A lazy image over `source`, with its local copy in `file`. Reads work at once; call
 * startHydration() to copy the rest in the background, and wait for `completion`.
 *
 * @example
 * const source = await openRangeReader(url);
 * const file = await open("/run/netimport/os.raw", "w+"); await file.truncate(source.size);
 * const image = createLazyImage({ source, file, log: console.log });
 * image.startHydration();
 * const block = await image.read(0, 4096);
 * await image.completion; // now the network is no longer needed
 */
export function createLazyImage(options: LazyImageOptions): LazyImage {
  return new Image(options);
}

/** A run of chunks: `start` up to (not including) `end`. */
interface Run {
  start: number;
  end: number;
}

class Image implements LazyImage {
  readonly completion: Promise<void>;
  readonly #source: RangeSource;
  readonly #file: FileHandle;
  readonly #map: ChunkMap;
  readonly #readAheadChunks: number;
  readonly #batchChunks: number;
  readonly #outageLimitMs: number;
  readonly #backoff: BackoffPolicy;
  readonly #log: (line: string) => void;
  readonly #url: string;
  /** Each chunk on its way from the server, and the fetch that brings it (shared by whoever needs it). */
  readonly #inFlight = new Map<number, Promise<void>>();
  readonly #stopping = new AbortController();
  #resolveCompletion!: () => void;
  #rejectCompletion!: (error: Error) => void;
  /** Demand reads waiting for the server, and read-ahead fetches: while any, no new hydration batch. */
  #priority = 0;
  #priorityIdle: Array<() => void> = [];
  #hydrator: Promise<void> | undefined;
  #fatal: Error | undefined;
  #complete = false;
  /** Since when requests have been failing (performance.now()), undefined while the server answers. */
  #failingSince: number | undefined;
  /** The server did not answer a demand read for outageLimitMs, and has not answered since. */
  #gone = false;
  #fetched = 0;
  #reads = 0;
  #demandReads = 0;

  constructor(options: LazyImageOptions) {
    const chunkBytes = options.chunkBytes ?? 256 << 10;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 4096 || (chunkBytes & (chunkBytes - 1)) !== 0) {
      throw new RangeError(`chunk size ${chunkBytes} is not a power of two of at least 4096 bytes`);
    }
    this.#source = options.source;
    this.#file = options.file;
    this.#map = new ChunkMap(options.source.size, chunkBytes);
    this.#readAheadChunks = Math.max(0, Math.floor((options.readAheadBytes ?? 1 << 20) / chunkBytes));
    this.#batchChunks = Math.max(1, Math.floor((options.hydrateBatchBytes ?? 4 << 20) / chunkBytes));
    this.#outageLimitMs = options.outageLimitMs ?? 300_000;
    this.#backoff = options.backoff ?? { baseMs: 1000, capMs: 10_000 };
    this.#log = options.log;
    this.#url = options.source.url ?? "the image's server";
    this.completion = new Promise((resolve, reject) => {
      this.#resolveCompletion = resolve;
      this.#rejectCompletion = reject;
    });
    // Whoever waits for it sees the failure; nobody waiting must not take the process down.
    this.completion.catch(() => undefined);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const size = this.#map.size;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new RangeError(`cannot read ${length} bytes at ${offset} of an image of ${size} bytes`);
    }
    this.#reads++;
    if (this.#stopping.signal.aborted) throw this.#stopping.signal.reason;
    if (length === 0) return Buffer.alloc(0);
    const first = this.#map.chunkAt(offset);
    const end = this.#map.chunkAt(offset + length - 1) + 1;
    if (this.#map.nextMissing(first) >= end) return this.#readLocal(offset, length);
    this.#demandReads++;
    this.#priority++;
    try {
      await this.#demand(first, end);
      return await this.#readLocal(offset, length);
    } finally {
      this.#lowerPriority();
    }
  }

  /** Makes chunks `first` to `end` local: fetches, retries, the outage limit. */
  async #demand(first: number, end: number): Promise<void> {
    let failedAt: number | undefined;
    let attempt = 0;
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      const waits = new Set<Promise<void>>();
      const runs: Run[] = [];
      for (let chunk = first; chunk < end; chunk++) {
        if (this.#map.has(chunk)) continue;
        const fetch = this.#inFlight.get(chunk);
        if (fetch) waits.add(fetch);
        else addToRuns(runs, chunk, this.#batchChunks);
      }
      if (waits.size === 0 && runs.length === 0) return;
      const fetches = runs.map((run) => this.#fetch(run));
      if (attempt === 0) this.#readAhead(end); // after this read's own requests, which go out first
      const results = await Promise.allSettled([...fetches, ...waits]);
      const failure = results.find((result) => result.status === "rejected")?.reason as Error | undefined;
      if (!failure) continue; // all here now, unless a fetch shared with someone else failed meanwhile: look again
      if (this.#stopping.signal.aborted) throw this.#stopping.signal.reason;
      if (this.#fatal) throw this.#fatal;
      const now = performance.now();
      failedAt ??= now;
      // Asking again cannot help what the server refused (gone from every mirror, a certificate that
      // does not verify): this read fails now; the hydrator keeps asking.
      if (!(failure instanceof HttpError && failure.retryable)) throw failure;
      if (this.#gone) {
        throw new Error(`${this.#url} is not answering (${failure.message}): blocks not yet local cannot be read`, { cause: failure });
      }
      if (now - failedAt >= this.#outageLimitMs) {
        this.#gone = true;
        this.#log(`${this.#url} has not answered for ${seconds(this.#outageLimitMs)} s: reads of blocks not yet local fail until it is back; ${this.#percentLocal()}% is local`);
        throw new Error(`${this.#url} has not answered for ${seconds(this.#outageLimitMs)} s (${failure.message})`, { cause: failure });
      }
      const delay = Math.min(backoffDelay(attempt++, this.#backoff), this.#outageLimitMs - (now - failedAt));
      await sleep(delay, this.#stopping.signal);
    }
  }

  /** Fetches the missing chunks after `end` (up to the read-ahead), in the background, at demand priority. */
  #readAhead(end: number): void {
    const last = Math.min(end + this.#readAheadChunks, this.#map.count);
    const runs: Run[] = [];
    for (let chunk = end; chunk < last; chunk++) {
      if (!this.#map.has(chunk) && !this.#inFlight.has(chunk)) addToRuns(runs, chunk, this.#batchChunks);
    }
    for (const run of runs) {
      this.#priority++;
      // A failed read-ahead leaves its chunks missing for a later read or the hydrator; what is
      // fatal, #fetch has recorded.
      this.#fetch(run).catch(() => undefined).finally(() => this.#lowerPriority());
    }
  }

  /**
   * One Range request for a run of chunks, written into the file and marked local. Every reader of
   * these chunks shares it while it is in flight. Rejects with what failed (after recording a fatal
   * failure, or the outage).
   */
  #fetch(run: Run): Promise<void> {
    const fetch = this.#transfer(run);
    for (let chunk = run.start; chunk < run.end; chunk++) this.#inFlight.set(chunk, fetch);
    // Registered first, so it runs before anyone waiting for this fetch looks at the chunks again.
    const done = (): void => {
      for (let chunk = run.start; chunk < run.end; chunk++) {
        if (this.#inFlight.get(chunk) === fetch) this.#inFlight.delete(chunk);
      }
    };
    fetch.then(done, done);
    return fetch;
  }

  async #transfer(run: Run): Promise<void> {
    const offset = this.#map.offsetOf(run.start);
    const length = this.#map.endOf(run.end) - offset;
    let data: Buffer;
    try {
      data = await this.#source.read(offset, length, this.#stopping.signal);
    } catch (error) {
      if (!this.#stopping.signal.aborted) this.#serverFailed(error as Error);
      throw error;
    }
    this.#fetched += length;
    this.#serverAnswered();
    try {
      await writeAll(this.#file, data, offset);
    } catch (error) {
      throw this.#setFatal(new LocalCopyError("cannot write", error));
    }
    this.#map.mark(run.start, run.end);
  }

  /** A request failed: fatal, or the start of an outage (said once), or another failure of one. */
  #serverFailed(error: Error): void {
    if (error instanceof ImageChangedError) {
      this.#setFatal(error);
      return;
    }
    if (this.#failingSince !== undefined) return;
    this.#failingSince = performance.now();
    this.#log(`${error.message}: retrying; reads of blocks not yet local wait up to ${seconds(this.#outageLimitMs)} s for it, ${this.#percentLocal()}% is local`);
  }

  /** A request succeeded: the end of an outage, if there was one. */
  #serverAnswered(): void {
    if (this.#failingSince === undefined) return;
    const after = seconds(performance.now() - this.#failingSince);
    this.#failingSince = undefined;
    this.#gone = false;
    this.#log(`${this.#url} answers again after ${after} s: reads and hydration go on; ${this.#percentLocal()}% is local`);
  }

  /** Records what ends the lazy image (the first such failure): said once, completion rejected. */
  #setFatal(error: Error): Error {
    if (this.#fatal) return this.#fatal;
    this.#fatal = error;
    this.#log(`${error.message}: reads of blocks not yet local fail from now on, and the copy will not complete; ${this.#percentLocal()}% is local`);
    this.#rejectCompletion(error);
    this.#wakeHydrator();
    return error;
  }

  startHydration(): void {
    this.#hydrator ??= this.#hydrate().catch((error: unknown) => {
      if (!this.#stopping.signal.aborted && !this.#fatal) this.#setFatal(error as Error);
    });
  }

  /** Copies every missing chunk, in order from chunk 0, a batch at a time, never during demand reads. */
  async #hydrate(): Promise<void> {
    const started = performance.now();
    const fetchedBefore = this.#fetched;
    const signal = this.#stopping.signal;
    let cursor = 0;
    let attempt = 0;
    while (!this.#map.complete) {
      // Again after each wake-up: a demand read may have come between the wake-up and now.
      while (this.#priority > 0 && !signal.aborted && !this.#fatal) await new Promise<void>((resolve) => this.#priorityIdle.push(resolve));
      if (signal.aborted || this.#fatal) return;
      const start = this.#nextFetchable(cursor) ?? this.#nextFetchable(0);
      if (start === undefined) {
        // What is missing is all on its way (demand reads, read-ahead): wait for one of those fetches.
        const fetches = [...new Set(this.#inFlight.values())];
        if (fetches.length === 0) throw new Error(`bug: chunk ${this.#map.nextMissing(0)} is missing but neither on its way nor fetchable`);
        await Promise.race(fetches.map((fetch) => fetch.catch(() => undefined)));
        continue;
      }
      let end = start + 1;
      while (end < this.#map.count && end - start < this.#batchChunks && !this.#map.has(end) && !this.#inFlight.has(end)) end++;
      try {
        await this.#fetch({ start, end });
        cursor = end;
        attempt = 0;
      } catch (error) {
        if (signal.aborted || this.#fatal) return;
        await sleep(backoffDelay(attempt++, this.#backoff), signal).catch(() => undefined);
      }
    }
    try {
      await this.#file.datasync();
    } catch (error) {
      throw new LocalCopyError("cannot flush", error);
    }
    this.#complete = true;
    const elapsed = (performance.now() - started) / 1000;
    const fetched = this.#fetched - fetchedBefore;
    this.#log(`${this.#url}: all ${formatBytes(this.#map.size)} are local, ${formatBytes(fetched)} fetched in ${elapsed.toFixed(1)} s (${formatBytes(Math.round(fetched / Math.max(elapsed, 0.001)))}/s)`);
    this.#resolveCompletion();
  }

  /** The first chunk at or after `from` that is missing and not on its way. */
  #nextFetchable(from: number): number | undefined {
    let chunk = this.#map.nextMissing(from);
    while (chunk < this.#map.count && this.#inFlight.has(chunk)) chunk = this.#map.nextMissing(chunk + 1);
    return chunk < this.#map.count ? chunk : undefined;
  }

  #lowerPriority(): void {
    if (--this.#priority === 0) this.#wakeHydrator();
  }

  #wakeHydrator(): void {
    const waiting = this.#priorityIdle;
    this.#priorityIdle = [];
    for (const wake of waiting) wake();
  }

  async #readLocal(offset: number, length: number): Promise<Buffer> {
    const data = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.#file.read(data, done, length - done, offset + done));
      } catch (error) {
        throw new LocalCopyError("cannot read", error);
      }
      if (bytesRead === 0) throw new LocalCopyError("cannot read", new Error(`it ends before byte ${offset + done}`));
      done += bytesRead;
    }
    return data;
  }

  #percentLocal(): number {
    return this.#map.size === 0 ? 100 : Math.floor((this.#map.localBytes * 100) / this.#map.size);
  }

  progress(): LazyImageProgress {
    return {
      size: this.#map.size,
      localBytes: this.#map.localBytes,
      fetchedBytes: this.#fetched,
      reads: this.#reads,
      demandReads: this.#demandReads,
      complete: this.#complete,
      serverGone: this.#gone,
    };
  }

  async stop(): Promise<void> {
    this.#stopping.abort(new Error("lazy image stopped"));
    this.#wakeHydrator();
    await this.#hydrator;
    await Promise.allSettled(this.#inFlight.values());
  }
}

/** Adds `chunk` to the last run when it continues it (and the run is not full), else starts a new run. */
function addToRuns(runs: Run[], chunk: number, maxChunks: number): void {
  const last = runs.at(-1);
  if (last && last.end === chunk && last.end - last.start < maxChunks) last.end++;
  else runs.push({ start: chunk, end: chunk + 1 });
}

async function writeAll(file: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** 300000 → "300", 1500 → "1.5" */
function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(1)));
}
