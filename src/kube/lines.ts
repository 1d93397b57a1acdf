/**
 * A watch stream's newline-delimited JSON, cut into lines as chunks arrive.
 * One UTF-8 decoder serves the whole stream, so a character whose bytes are
 * split across two chunks is decoded whole (decoding each chunk alone turns it
 * into two replacement characters).
 */
import { StringDecoder } from 'node:string_decoder';

export class LineDecoder {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  /** The complete, non-blank lines `chunk` finishes, in order. */
  push(chunk: Buffer): string[] {
    this.pending += this.decoder.write(chunk);
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    return lines.filter((line) => line.trim() !== '');
  }
}
