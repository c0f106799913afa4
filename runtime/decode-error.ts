// What a decoder found wrong with its input, as a fact the stages above can read (`problem`) rather
// than a sentence they would have to parse: the input was cut short ("truncated"), or it holds what no
// encoder writes ("corrupt": bad data, a checksum mismatch, trailing garbage).

export type DecodeProblem = "truncated" | "corrupt";

/**
 * "<format> stream is <problem>[: <detail>]".
 *
 * @example throw new DecodeError("bzip2", "corrupt", "block CRC mismatch"); // bzip2 stream is corrupt: block CRC mismatch
 */
export class DecodeError extends Error {
  readonly format: string;
  readonly problem: DecodeProblem;

  constructor(format: string, problem: DecodeProblem, detail?: string, options?: ErrorOptions) {
    super(`${format} stream is ${problem}${detail ? `: ${detail}` : ""}`, options);
    this.format = format;
    this.problem = problem;
  }
}

/** The detail every decoder gives for bytes after the end of the compressed data. */
export const TRAILING_GARBAGE = "trailing garbage after the end of the compressed data";

/** A decoder that could not run at all (a system binary that failed to start): not the stream's fault. */
export class DecoderUnavailable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DecoderUnavailable";
  }
}
