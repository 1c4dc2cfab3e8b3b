#!/usr/bin/env node
// voicemesh-node: the gateway from Node.js. One JSON object per event on stdout.
//
//   node dist/main.js ask "What is the capital of France?" [--speak] [--out reply.wav]
//   node dist/main.js converse question.wav [--out reply.wav]
//   options: --target HOST:PORT (default $VOICEMESH_TARGET or 127.0.0.1:50051), --user ID, --session ID,
//   --token T and --ca CA.pem (default $VOICEMESH_TOKEN / $VOICEMESH_CA, else what `voicemesh up` saved)
import { ServiceError, status } from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { AskResponse, ConverseResponse } from "./gen/voicemesh/v1/gateway";
import { findCredentials, VoicemeshClient } from "./client";
import { readWav, WavError, writeWav } from "./wav";

const USAGE = "usage: voicemesh-node [--target HOST:PORT] [--token T] [--ca CA.pem] [--user ID] (ask TEXT [--speak] | converse FILE.wav) [--out FILE.wav]";

type Event = AskResponse["event"] | ConverseResponse["event"];

class UsageError extends Error {}

/** Reply audio that came back, kept to be written out. */
class Audio {
  chunks: Buffer[] = [];
  sampleRateHz = 0;
  bytes = 0;
}

function print(event: Event, turn: number | undefined, audio: Audio): void {
  if (event === undefined) return;
  let value: unknown = event.value;
  if (event.$case === "replyAudio") {
    // Base64 audio is noise on a terminal: keep it, and say how much there is.
    const chunk = Buffer.from(event.value.audioContent);
    audio.chunks.push(chunk);
    audio.sampleRateHz = event.value.sampleRateHz;
    audio.bytes += chunk.length;
    value = { ...event.value, audioContent: undefined, audioBytes: chunk.length };
  }
  process.stdout.write(JSON.stringify({ event: event.$case, ...(turn === undefined ? {} : { turn }), value }) + "\n");
}

async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      target: { type: "string", default: process.env.VOICEMESH_TARGET ?? "127.0.0.1:50051" },
      token: { type: "string", default: "" },
      ca: { type: "string", default: "" },
      user: { type: "string", default: "" },
      session: { type: "string", default: "" },
      speak: { type: "boolean", default: false },
      out: { type: "string" },
      timeout: { type: "string", default: "120" },
    },
  });
  const [command, argument, ...rest] = positionals;
  if (!command || !argument || rest.length) throw new UsageError(USAGE);
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new UsageError(`--timeout ${values.timeout} is not a positive number of seconds`);
  const options = {
    userId: values.user,
    sessionId: values.session,
    speak: values.speak || values.out !== undefined,
    timeoutS,
  };
  const audio = new Audio();
  const client = new VoicemeshClient(values.target!, findCredentials({ token: values.token, ca: values.ca }));
  try {
    if (command === "ask") {
      for await (const response of client.ask(argument, options)) print(response.event, undefined, audio);
    } else if (command === "converse") {
      const question = readWav(argument);
      for await (const response of client.converse(question, options)) print(response.event, response.turnIndex, audio);
    } else {
      throw new UsageError(`unknown command ${JSON.stringify(command)}; ${USAGE}`);
    }
  } finally {
    client.close();
  }
  if (values.out !== undefined) {
    if (!audio.bytes) throw new Error("no reply audio came back; nothing written");
    writeWav(values.out, { pcm: Buffer.concat(audio.chunks), sampleRateHz: audio.sampleRateHz, channels: 1 });
  }
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as ServiceError).code === "number";
}

// `voicemesh-node ask … | head`: the reader has all it wanted.
process.stdout.on("error", (error: NodeJS.ErrnoException) => process.exit(error.code === "EPIPE" ? 0 : 1));

run(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof WavError || (error as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      process.stderr.write(`voicemesh-node: ${(error as Error).message}\n`);
      process.exit(2);
    }
    if (isServiceError(error)) {
      process.stderr.write(`voicemesh-node: ${status[error.code]}: ${error.details}\n`);
      process.exit(1);
    }
    process.stderr.write(`voicemesh-node: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
