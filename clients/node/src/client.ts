// The gateway's public API from Node: a text Ask and a spoken Converse, each an async stream of the
// gateway's own events. The stubs come from protos/ (buf generate, ts-proto for @grpc/grpc-js).
import { CallCredentials, ChannelCredentials, Metadata } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { AudioEncoding } from "./gen/voicemesh/v1/audio";
import {
  AskResponse,
  ConverseRequest,
  ConverseResponse,
  GatewayServiceClient,
  ReplyConfig,
} from "./gen/voicemesh/v1/gateway";
import { Wav } from "./wav";

export interface TurnOptions {
  speak?: boolean; // ask for spoken reply audio
  voice?: string;
  maxSentences?: number; // the reply stops after this many sentences; 0 or unset: the server's default (2)
  userId?: string;
  sessionId?: string;
  requestId?: string;
  timeoutS?: number; // the call's deadline; every call has one, so a dead gateway never hangs it
}

const CHUNK_MS = 100;

export interface Credentials {
  token?: string; // bearer JWT or API key
  ca?: string; // path of the CA certificate (PEM) the gateway's TLS chains to
}

// As the Python SDK finds them: given, else $VOICEMESH_TOKEN / $VOICEMESH_CA, else the
// credentials.toml that `voicemesh up` wrote in $XDG_CONFIG_HOME/voicemesh (~/.config/voicemesh).
export function findCredentials(given: Credentials = {}): Credentials {
  const folder = join(process.env.XDG_CONFIG_HOME || join(homedir(), ".config"), "voicemesh");
  let saved = "";
  try {
    saved = readFileSync(join(folder, "credentials.toml"), "utf8");
  } catch {
    // no saved credentials: the given or the environment's, or none
  }
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, "m").exec(saved)?.[1];
  return {
    token: given.token || process.env.VOICEMESH_TOKEN || field("token"),
    ca: given.ca || process.env.VOICEMESH_CA || field("ca"),
  };
}

export class VoicemeshClient {
  private readonly stub: GatewayServiceClient;

  constructor(target: string, credentials: Credentials = findCredentials()) {
    let channel = ChannelCredentials.createSsl(credentials.ca ? readFileSync(credentials.ca) : null);
    if (credentials.token) {
      const token = credentials.token;
      channel = channel.compose(
        CallCredentials.createFromMetadataGenerator((_options, callback) => {
          const metadata = new Metadata();
          metadata.set("authorization", `Bearer ${token}`);
          callback(null, metadata);
        }),
      );
    }
    this.stub = new GatewayServiceClient(target, channel, {
      "grpc.max_receive_message_length": 16 << 20,
    });
  }

  close(): void {
    this.stub.close();
  }

  ask(text: string, options: TurnOptions = {}): AsyncIterable<AskResponse> {
    const request = {
      text,
      reply: replyConfig(options),
      sessionId: options.sessionId ?? "",
      requestId: options.requestId ?? "",
      userId: options.userId ?? "",
    };
    return this.stub.ask(request, new Metadata(), { deadline: deadline(options) });
  }

  /** Stream a recording's audio (as fast as the gateway takes it), then half-close. */
  converse(audio: Wav, options: TurnOptions = {}): AsyncIterable<ConverseResponse> {
    const call = this.stub.converse(new Metadata(), { deadline: deadline(options) });
    const config = {
      audioFormat: {
        encoding: AudioEncoding.AUDIO_ENCODING_LINEAR16,
        sampleRateHz: audio.sampleRateHz,
        channels: audio.channels,
      },
      reply: replyConfig(options),
      sessionId: options.sessionId ?? "",
      requestId: options.requestId ?? "",
      userId: options.userId ?? "",
      interimResults: false,
      noBargeIn: false,
    };
    const write = (request: ConverseRequest) => call.write(request);
    write({ streamingRequest: { $case: "config", value: config } });
    const step = ((audio.sampleRateHz * CHUNK_MS) / 1000) * 2 * audio.channels;
    for (let offset = 0; offset < audio.pcm.length; offset += step) {
      write({ streamingRequest: { $case: "audioContent", value: audio.pcm.subarray(offset, offset + step) } });
    }
    call.end();
    return call;
  }
}

function replyConfig(options: TurnOptions): ReplyConfig {
  return {
    synthesizeAudio: options.speak ?? false,
    voice: options.voice ?? "",
    sampleRateHz: 0,
    maxSentences: options.maxSentences ?? 0,
  };
}

function deadline(options: TurnOptions): Date {
  return new Date(Date.now() + (options.timeoutS ?? 120) * 1000);
}
