/**
 * The `fulcrum` load-balancing policy for `@grpc/grpc-js`: every call of a channel is balanced by a
 * Fulcrum `LoadBalancer` over the channel's resolved addresses.
 *
 * The shape is grpc-js's own `round_robin`: one `LeafLoadBalancer` (a pick_first over one
 * endpoint) per resolved endpoint, all kept connected; the policy's state is READY while any
 * child is. What differs is the choice and its accounting:
 * - The core load balancer's members are the children that are READY (and, with `healthCheck`,
 *   whose `Health/Watch` says SERVING: the child's subchannel is wrapped by
 *   `HealthWatchedSubchannel` and pick_first reports an unhealthy one as TRANSIENT_FAILURE). A child
 *   that leaves READY leaves the set at once (`lb.update`), so the balancer never picks a
 *   connection that is not there; one that comes back joins as a new backend, with slow start when
 *   configured. Outlier ejection, panic mode and the balancers work on that set as everywhere else.
 * - Slow path and hot path are separate: connectivity and config changes update the set and
 *   publish a new picker; `pick()` is one `lb.acquire()` and the chosen child's own pick.
 * - Each call holds a `Lease` from pick to end: grpc-js reports the end through `onCallEnded`,
 *   and the status becomes the outcome (`outcomeOf`: failure statuses feed passive health and
 *   outlier ejection). grpc-js may abandon a pick without starting the call — the subchannel left
 *   READY while call credentials were computed, or the call was cancelled first — and then calls
 *   neither hook. A lease whose call has not started by the next turn of the event loop is
 *   therefore released as `aborted` (no failure, no latency sample); should the call start after
 *   all, its backend is leased again (`stickyBackendId`) for the call's lifetime.
 * - Retries are grpc-js's: its transparent retry of a stream the server refused (nothing was
 *   committed) makes a new pick — a new lease, on whichever backend the balancer then chooses —
 *   and a call that was committed fails with the backend's status, never replayed unless the
 *   service config's `retryPolicy` says so.
 */
import { connectivityState, experimental, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import type { ChannelOptions } from '@grpc/grpc-js';
import { coarseClock, createBalancer, createLoadBalancer, defaultRandom, LoadBalancer } from '@fulcrum/core';
import type { AcquireContext, BackendSpec, Lease, Outcome } from '@fulcrum/core';
import { backendIdFor, endpointAddress, specAddressFor } from './backend-id';
import { normalizeFulcrumPolicyOptions, POLICY_NAME } from './config';
import type { NormalizedFulcrumPolicyOptions } from './config';
import { HealthWatchedSubchannel } from './health';
import { notifyLoadBalancer } from './hooks';
import { outcomeOf } from './status';

type Picker = experimental.Picker;
type PickArgs = experimental.PickArgs;
type PickResult = experimental.PickResult;
type Endpoint = experimental.Endpoint;
type ChannelControlHelper = experimental.ChannelControlHelper;
type ConnectivityState = connectivityState;

const { READY, CONNECTING, IDLE, TRANSIENT_FAILURE } = connectivityState;
const PickResultType = experimental.PickResultType;

/** The parsed `{ fulcrum: … }` entry of `loadBalancingConfig`. */
export class FulcrumLoadBalancingConfig implements experimental.TypedLoadBalancingConfig {
  readonly options: NormalizedFulcrumPolicyOptions;
  readonly #raw: object;

  constructor(raw: unknown = {}) {
    this.options = normalizeFulcrumPolicyOptions(raw);
    this.#raw = (raw ?? {}) as object;
  }

  getLoadBalancerName(): string {
    return POLICY_NAME;
  }

  toJsonObject(): object {
    return { [POLICY_NAME]: this.#raw };
  }

  static createFromJson(raw: unknown): FulcrumLoadBalancingConfig {
    return new FulcrumLoadBalancingConfig(raw);
  }
}

interface Child {
  endpoint: Endpoint;
  readonly id: string;
  readonly key: string;
  readonly address: string;
  readonly leaf: experimental.LeafLoadBalancer;
  state: ConnectivityState;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if (a.addresses.length !== b.addresses.length) return false;
  for (let i = 0; i < a.addresses.length; i++) {
    if (experimental.subchannelAddressToString(a.addresses[i]!) !== experimental.subchannelAddressToString(b.addresses[i]!)) return false;
  }
  return true;
}

/** Which outcomes the outlier detector counts: `outcomeOf` already applied `failureStatuses`. */
const isFailedOutcome = (outcome: Outcome): boolean => !outcome.ok;

const ABORTED: Outcome = Object.freeze({ ok: true, error: 'aborted' });
const EMPTY_CONTEXT: AcquireContext = Object.freeze({});
const QUEUE_RESULT: PickResult = Object.freeze({
  pickResultType: PickResultType.QUEUE,
  subchannel: null,
  status: null,
  onCallStarted: null,
  onCallEnded: null,
});

/**
 * One call's lease, from pick to end. `started`/`ended` are the hooks grpc-js calls; they are
 * arrow properties so the pick result can hand them over without binding per call.
 */
class CallLease {
  lease: Lease | undefined;
  startedCall = false;
  abandoned = false;
  readonly #policy: FulcrumLoadBalancer;
  readonly #childStarted: (() => void) | null;
  readonly #childEnded: experimental.PickResult['onCallEnded'];

  constructor(policy: FulcrumLoadBalancer, lease: Lease, child: PickResult) {
    this.#policy = policy;
    this.lease = lease;
    this.#childStarted = child.onCallStarted;
    this.#childEnded = child.onCallEnded;
  }

  readonly started = (): void => {
    this.startedCall = true;
    this.#childStarted?.();
    if (this.abandoned) this.lease = this.#policy.releaseAbandoned(this);
  };

  readonly ended = (code: grpcStatus, details: string, metadata: Metadata): void => {
    this.#childEnded?.(code, details, metadata);
    const lease = this.lease;
    this.lease = undefined;
    lease?.release(outcomeOf(code, this.#policy.failureMask));
  };
}

/** The snapshot grpc-js calls for each call; it reads the policy's live state. */
class FulcrumPicker implements Picker {
  readonly #policy: FulcrumLoadBalancer;
  readonly #lb: LoadBalancer;
  readonly #hashKey: string | undefined;
  readonly #children: ReadonlyMap<string, Child>;
  readonly #noBackend: PickResult;

  constructor(policy: FulcrumLoadBalancer, lb: LoadBalancer, hashKey: string | undefined, children: ReadonlyMap<string, Child>) {
    this.#policy = policy;
    this.#lb = lb;
    this.#hashKey = hashKey;
    this.#children = children;
    this.#noBackend = {
      pickResultType: PickResultType.TRANSIENT_FAILURE,
      subchannel: null,
      status: { code: grpcStatus.UNAVAILABLE, details: `fulcrum: no backend available in '${lb.name}'`, metadata: new Metadata() },
      onCallStarted: null,
      onCallEnded: null,
    };
  }

  pick(args: PickArgs): PickResult {
    let context = EMPTY_CONTEXT;
    if (this.#hashKey !== undefined) {
      const values = args.metadata.get(this.#hashKey);
      const key = values[0];
      if (typeof key === 'string') context = { key };
    }
    const lease = this.#lb.acquire(context);
    if (lease === undefined) return this.#noBackend;
    this.#policy.carriesTraffic = true;
    const child = this.#children.get(lease.backend.id);
    const result = child?.leaf.getPicker().pick(args);
    if (result === undefined || result.pickResultType !== PickResultType.COMPLETE) {
      // The child left READY and its update is on its way: the call waits for the next picker.
      lease.release(ABORTED);
      return QUEUE_RESULT;
    }
    const call = new CallLease(this.#policy, lease, result);
    this.#policy.trackUnstarted(call);
    return {
      pickResultType: PickResultType.COMPLETE,
      subchannel: result.subchannel,
      status: null,
      onCallStarted: call.started,
      onCallEnded: call.ended,
    };
  }
}

export class FulcrumLoadBalancer implements experimental.LoadBalancer {
  readonly #helper: ChannelControlHelper;
  readonly #children = new Map<string, Child>();
  #config: FulcrumLoadBalancingConfig | undefined;
  #lb: LoadBalancer | undefined;
  #members = '';
  #state: ConnectivityState = IDLE;
  #lastError: string | null = null;
  #unstarted: CallLease[] = [];
  #sweepScheduled = false;
  #destroyed = false;
  #updating = false;
  /** Bit n set when status code n counts against a backend. */
  failureMask = 0;
  /**
   * Whether a call has been balanced by the current load balancer. Servers that connect before
   * that join at full weight, as a load balancer's first members do: slow start protects a server
   * joining a pool that carries traffic, and with `minWeightPercent: 0` a channel whose servers all
   * ramped from nothing could not place its first calls.
   */
  carriesTraffic = false;

  constructor(helper: ChannelControlHelper) {
    this.#helper = helper;
  }

  /** The core load balancer of this channel (undefined before the first resolution). */
  get loadBalancer(): LoadBalancer | undefined {
    return this.#lb;
  }

  updateAddressList(
    endpoints: experimental.StatusOr<Endpoint[]>,
    config: experimental.TypedLoadBalancingConfig,
    options: ChannelOptions,
    resolutionNote: string,
  ): boolean {
    if (!(config instanceof FulcrumLoadBalancingConfig)) return false;
    if (!endpoints.ok) {
      if (this.#children.size === 0) this.#publish(TRANSIENT_FAILURE, new experimental.UnavailablePicker(endpoints.error), endpoints.error.details);
      return true;
    }
    this.#updating = true;
    try {
      this.#applyConfig(config);
      const wanted = new Map<string, Endpoint>();
      for (const endpoint of endpoints.value) {
        const address = endpointAddress(endpoint);
        if (address !== '' && !wanted.has(address)) wanted.set(address, endpoint);
      }
      for (const [key, child] of this.#children) {
        if (!wanted.has(key)) {
          this.#children.delete(key);
          child.leaf.destroy();
        }
      }
      const ids = new Set([...this.#children.values()].map((c) => c.id));
      for (const [address, endpoint] of wanted) {
        const existing = this.#children.get(address);
        if (existing !== undefined) {
          // The same endpoint again (a re-resolution) changes nothing: restarting its pick_first
          // would drop a READY connection, ask for re-resolution and loop with an eager resolver.
          if (!sameEndpoint(existing.endpoint, endpoint)) {
            existing.endpoint = endpoint;
            existing.leaf.updateEndpoint(endpoint, options);
          }
          continue;
        }
        let id = backendIdFor(address);
        for (let n = 2; ids.has(id); n++) id = `${backendIdFor(address).slice(0, 60)}-${n}`;
        ids.add(id);
        const child = this.#createChild(id, address, endpoint, options, resolutionNote);
        this.#children.set(address, child);
      }
      for (const child of this.#children.values()) if (child.leaf.getConnectivityState() === IDLE) child.leaf.startConnecting();
    } finally {
      this.#updating = false;
    }
    if (this.#children.size === 0) {
      const message = `fulcrum: no addresses resolved (${resolutionNote})`;
      this.#syncMembers();
      this.#publish(TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details: message }), message);
      return true;
    }
    this.#refresh();
    return true;
  }

  exitIdle(): void {
    for (const child of this.#children.values()) if (child.leaf.getConnectivityState() === IDLE) child.leaf.exitIdle();
  }

  resetBackoff(): void {
    // The children's pick_first balancers own their backoff and expose no reset.
  }

  destroy(): void {
    this.#destroyed = true;
    for (const child of this.#children.values()) child.leaf.destroy();
    this.#children.clear();
    this.#lb?.close();
    this.#sweep();
  }

  getTypeName(): string {
    return POLICY_NAME;
  }

  /** @internal A picked call, released as aborted if grpc-js abandons it before starting it. */
  trackUnstarted(call: CallLease): void {
    this.#unstarted.push(call);
    if (!this.#sweepScheduled) {
      this.#sweepScheduled = true;
      setImmediate(this.#sweep);
    }
  }

  /** @internal A call started after its lease was released as abandoned: lease its backend again. */
  releaseAbandoned(call: CallLease): Lease | undefined {
    const previous = call.lease;
    if (previous === undefined || this.#lb === undefined) return undefined;
    const lease = this.#lb.acquire({ stickyBackendId: previous.backend.id });
    if (lease !== undefined && lease.backend !== previous.backend) {
      lease.release(ABORTED);
      return undefined;
    }
    return lease;
  }

  readonly #sweep = (): void => {
    this.#sweepScheduled = false;
    const calls = this.#unstarted;
    if (calls.length === 0) return;
    this.#unstarted = [];
    for (const call of calls) {
      if (call.startedCall || call.lease === undefined) continue;
      call.abandoned = true;
      call.lease.release(ABORTED);
    }
  };

  #applyConfig(config: FulcrumLoadBalancingConfig): void {
    const previous = this.#config?.options;
    const next = config.options;
    this.#config = config;
    this.failureMask = next.failureMask;
    if (previous !== undefined && JSON.stringify(previous) === JSON.stringify(next)) return;
    if (previous !== undefined && JSON.stringify(previous.healthCheck) !== JSON.stringify(next.healthCheck)) {
      // Subchannels are wrapped for health when created: a new health config needs new children.
      for (const child of this.#children.values()) child.leaf.destroy();
      this.#children.clear();
    }
    const old = this.#lb;
    const outlier = next.outlier === undefined ? undefined : { ...next.outlier, isFailure: isFailedOutcome };
    const lb = createLoadBalancer({
      backends: [],
      name: next.name,
      // With options, the balancer is built here (the load balancer takes an instance as well as a
      // name), on the clock and random source the load balancer would give it.
      algorithm:
        Object.keys(next.algorithmOptions).length === 0
          ? next.algorithm
          : createBalancer(next.algorithm, { ...next.algorithmOptions, clock: coarseClock, random: defaultRandom }),
      ...(outlier !== undefined ? { outlier } : {}),
      ...(next.slowStart !== undefined ? { slowStart: next.slowStart } : {}),
      panicThreshold: next.panicThreshold,
      latencyDecayMs: next.latencyDecayMs,
    });
    this.#installLoadBalancer(lb, old);
  }

  #installLoadBalancer(lb: LoadBalancer, old: LoadBalancer | undefined): void {
    this.#lb = lb;
    this.#members = '';
    this.carriesTraffic = false;
    // An ejection or its end changes what acquire can return: calls queued for a picker (wait for
    // ready) get a new one to try.
    const republish = (): void => {
      if (!this.#updating && !this.#destroyed) this.#refresh();
    };
    lb.on('ejected', republish);
    lb.on('restored', republish);
    old?.close();
    notifyLoadBalancer(lb, { name: lb.name });
  }

  #createChild(id: string, address: string, endpoint: Endpoint, options: ChannelOptions, resolutionNote: string): Child {
    const healthCheck = this.#config?.options.healthCheck;
    // Assigned below, once the helper that refers to it exists.
    // eslint-disable-next-line prefer-const
    let child: Child | undefined;
    const helper = experimental.createChildChannelControlHelper(this.#helper, {
      createSubchannel: (subchannelAddress, subchannelArgs) => {
        const subchannel = this.#helper.createSubchannel(subchannelAddress, subchannelArgs);
        return healthCheck === undefined ? subchannel : new HealthWatchedSubchannel(subchannel, healthCheck.serviceName);
      },
      updateState: (state, _picker, errorMessage) => {
        if (child === undefined || this.#destroyed || this.#children.get(child.key) !== child) return;
        if (child.state === READY && state !== READY) this.#helper.requestReresolution();
        child.state = state;
        if (errorMessage) this.#lastError = errorMessage;
        if (!this.#updating) this.#refresh();
      },
    });
    const leaf = new experimental.LeafLoadBalancer(endpoint, helper, options, resolutionNote);
    child = { endpoint, id, key: address, address, leaf, state: IDLE };
    return child;
  }

  /** The members of the core load balancer are the READY children. */
  #syncMembers(): void {
    const lb = this.#lb;
    if (lb === undefined) return;
    const specs: BackendSpec[] = [];
    for (const child of this.#children.values()) {
      if (child.leaf.getConnectivityState() !== READY) continue;
      specs.push({ id: child.id, address: specAddressFor(child.address), metadata: { grpcAddress: child.address } });
    }
    const signature = specs.map((s) => s.id).join(' ');
    if (signature === this.#members) return;
    this.#members = signature;
    lb.update(specs, { slowStart: this.carriesTraffic });
  }

  #refresh(): void {
    if (this.#destroyed || this.#lb === undefined) return;
    // Like round_robin, keep every child connected: the balancer needs the whole set. A child's
    // exitIdle reports its new state synchronously; the counts below read it, so no nested refresh.
    const wasUpdating = this.#updating;
    this.#updating = true;
    try {
      for (const child of this.#children.values()) if (child.leaf.getConnectivityState() === IDLE) child.leaf.exitIdle();
    } finally {
      this.#updating = wasUpdating;
    }
    this.#syncMembers();
    let ready = 0;
    let connecting = 0;
    for (const child of this.#children.values()) {
      const state = child.leaf.getConnectivityState();
      if (state === READY) ready++;
      else if (state === CONNECTING || state === IDLE) connecting++;
    }
    if (ready > 0) {
      this.#publish(READY, new FulcrumPicker(this, this.#lb, this.#config?.options.hashKey?.metadata, this.#children), null);
    } else if (connecting > 0) {
      this.#publish(CONNECTING, new experimental.QueuePicker(this), null);
    } else {
      const message = `fulcrum: no connection established. Last error: ${this.#lastError}`;
      this.#publish(TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details: message }), message);
    }
  }

  #publish(state: ConnectivityState, picker: Picker, errorMessage: string | null): void {
    this.#state = state;
    this.#helper.updateState(state, picker, errorMessage);
  }

  /** The policy's aggregate connectivity state. */
  get state(): ConnectivityState {
    return this.#state;
  }
}
