/**
 * The caller's dispatch handler, in one shape.
 *
 * undici 7 has two handler APIs: the controller-based one (`onRequestStart`, `onResponseStart`,
 * `onResponseData`, `onResponseEnd`, `onResponseError`), which `compose()` interceptors speak, and
 * the callback one (`onConnect`, `onHeaders`, `onData`, `onComplete`, `onError`), which
 * `request()`, `stream()` and undici 7's own `fetch` still use and which undici's connection code
 * speaks internally. The balanced dispatcher talks to its per-instance pools in the callback
 * shape — what `Pool` runs natively, so a `request()` through it costs no conversion at all — and
 * presents a controller-based handler with the same adaptation undici's `DispatcherBase` applies
 * (headers parsed once into a record, `pause()`/`resume()` mapped to the return value and the
 * resume callback, `rawHeaders`/`rawTrailers` on the controller for interceptors that want them).
 */
import type { Duplex } from 'node:stream';
import { util, type Dispatcher } from 'undici';

/** The callback-shaped handler the balanced request drives. */
export interface CallbackHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void;
  onResponseStarted?(): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: string[] | Buffer[] | null): void;
  onError?(error: Error): void;
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void;
  onBodySent?(chunkSize: number, totalBytesSent: number): void;
}

/** The caller's handler as a `CallbackHandler` (itself when it already is one). */
export function toCallbackHandler(handler: Dispatcher.DispatchHandler): CallbackHandler {
  return typeof handler.onRequestStart === 'function' ? new ControllerHandlerAdapter(handler) : (handler as CallbackHandler);
}

/** Whether the handler can be told about errors (undici refuses handlers that cannot). */
export function canReceiveErrors(handler: Dispatcher.DispatchHandler): boolean {
  return typeof handler.onError === 'function' || typeof handler.onResponseError === 'function';
}

class Controller implements Dispatcher.DispatchController {
  rawHeaders: Buffer[] | null = null;
  rawTrailers: Buffer[] | string[] | null = null;
  resumeCallback: (() => void) | undefined;
  #abort: (reason?: Error) => void;
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;

  constructor(abort: (reason?: Error) => void) {
    this.#abort = abort;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#abort(reason);
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.resumeCallback?.();
  }
}

const NO_ABORT = (): void => undefined;

/** A controller-based handler driven through the callback API. */
class ControllerHandlerAdapter implements CallbackHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  #controller: Controller | undefined;

  constructor(handler: Dispatcher.DispatchHandler) {
    this.#handler = handler;
  }

  #current(): Controller {
    // An error before any connection (no instance available) still needs a controller to report on.
    return (this.#controller ??= new Controller(NO_ABORT));
  }

  onConnect(abort: (reason?: Error) => void, context?: unknown): void {
    this.#controller = new Controller(abort);
    this.#handler.onRequestStart?.(this.#controller, context ?? {});
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const controller = this.#current();
    controller.resumeCallback = resume;
    controller.rawHeaders = rawHeaders;
    this.#handler.onResponseStart?.(controller, statusCode, util.parseHeaders(rawHeaders), statusText);
    return !controller.paused;
  }

  onData(chunk: Buffer): boolean {
    const controller = this.#current();
    this.#handler.onResponseData?.(controller, chunk);
    return !controller.paused;
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    const controller = this.#current();
    controller.rawTrailers = trailers;
    this.#handler.onResponseEnd?.(controller, util.parseHeaders((trailers ?? []) as Buffer[]));
  }

  onError(error: Error): void {
    this.#handler.onResponseError?.(this.#current(), error);
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    const controller = this.#current();
    this.#handler.onRequestUpgrade?.(controller, statusCode, util.parseHeaders((rawHeaders ?? []) as Buffer[]), socket);
  }
}
