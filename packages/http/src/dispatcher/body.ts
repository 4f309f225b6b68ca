/**
 * Whether a request body can be sent a second time.
 *
 * The proxy has to buffer a body to replay it; a dispatcher's caller usually hands over a body that
 * is already in memory (a string, a Buffer, a Blob), which can be sent any number of times at no
 * cost. Streams and (async) iterables — what `fetch` turns every body into — can be read once. But
 * an attempt that failed before connecting never touched its body (undici writes it only to an
 * established connection), and the retry rules allow such "not sent" attempts for any method: so a
 * one-shot body is wrapped in a generator that records whether anyone started reading it, and an
 * untouched one goes to the next instance. Node streams say the same thing through
 * `readableDidRead`. This is what makes a `fetch` POST survive a refused connection.
 */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

type Body = Dispatcher.DispatchOptions['body'];

export class AttemptBody {
  readonly #source: Body;
  readonly #kind: 'reusable' | 'stream' | 'iterable';
  #started = false;

  constructor(source: Body) {
    this.#source = source;
    if (source === null || source === undefined || typeof source === 'string' || source instanceof Uint8Array || isBlob(source)) {
      this.#kind = 'reusable';
    } else if (source instanceof Readable) {
      this.#kind = 'stream';
    } else if (isIterable(source)) {
      this.#kind = 'iterable';
    } else {
      // FormData and anything else undici accepts: read by undici in ways we cannot observe.
      this.#kind = 'stream';
    }
  }

  /** The body as it was given: the fast path of a first attempt needs no wrapper. */
  get original(): Body {
    return this.#source;
  }

  get reusable(): boolean {
    return this.#kind === 'reusable';
  }

  /** The body for the next attempt. */
  forAttempt(): Body {
    if (this.#kind !== 'iterable') return this.#source;
    const source = this.#source as AsyncIterable<unknown> | Iterable<unknown>;
    const mark = (): void => {
      this.#started = true;
    };
    return (async function* tracked() {
      mark();
      yield* source;
    })() as unknown as Body;
  }

  /** True when the body can go out again after a failure that sent nothing (`notSent`). */
  replayableAfterNotSent(): boolean {
    switch (this.#kind) {
      case 'reusable':
        return true;
      case 'iterable':
        return !this.#started;
      default: {
        const stream = this.#source as Readable | undefined;
        return stream instanceof Readable && !stream.readableDidRead && !stream.destroyed;
      }
    }
  }
}

function isBlob(value: unknown): boolean {
  return typeof Blob !== 'undefined' && value instanceof Blob;
}

function isIterable(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    (typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function')
  );
}
