// 16-bit PCM WAV files: read a question to stream, write a reply that came back.
import { readFileSync, writeFileSync } from "node:fs";

export interface Wav {
  pcm: Buffer; // PCM s16le, channels interleaved
  sampleRateHz: number;
  channels: number;
}

export class WavError extends Error {}

/** Read a 16-bit PCM WAV file; anything else is a WavError that says what the file is not. */
export function readWav(path: string): Wav {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    throw new WavError(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (data.length < 12 || data.toString("ascii", 0, 4) !== "RIFF" || data.toString("ascii", 8, 12) !== "WAVE") {
    throw new WavError(`${path} is not a WAV file (no RIFF/WAVE header)`);
  }
  let format: { channels: number; sampleRateHz: number; bits: number; encoding: number } | undefined;
  for (let offset = 12; offset + 8 <= data.length; ) {
    const id = data.toString("ascii", offset, offset + 4);
    const size = data.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === "fmt " && size >= 16) {
      format = {
        encoding: data.readUInt16LE(body),
        channels: data.readUInt16LE(body + 2),
        sampleRateHz: data.readUInt32LE(body + 4),
        bits: data.readUInt16LE(body + 14),
      };
    } else if (id === "data") {
      if (format === undefined) throw new WavError(`${path}: the data chunk comes before the format chunk`);
      if (format.encoding !== 1 || format.bits !== 16) {
        throw new WavError(`${path} holds ${format.bits}-bit audio in format ${format.encoding}; use 16-bit PCM`);
      }
      const end = Math.min(body + size, data.length);
      return { pcm: data.subarray(body, end - ((end - body) % (2 * format.channels))), ...format };
    }
    offset = body + size + (size % 2);
  }
  throw new WavError(`${path} has no audio data`);
}

export function writeWav(path: string, wav: Wav): void {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + wav.pcm.length, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(wav.channels, 22);
  header.writeUInt32LE(wav.sampleRateHz, 24);
  header.writeUInt32LE(wav.sampleRateHz * wav.channels * 2, 28);
  header.writeUInt16LE(wav.channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(wav.pcm.length, 40);
  writeFileSync(path, Buffer.concat([header, wav.pcm]));
}
