/**
 * The OpenTelemetry database-client connection metrics (semantic conventions,
 * `db.client.connection.*`), one set of instruments per meter shared by every pool on it, each
 * pool's series told apart by `db.client.connection.pool.name`. Gauges are read from the pool at
 * collection time; histograms and the timeout counter are recorded by the pool as a MetricsSink.
 */
import type * as Api from '@opentelemetry/api';
import type { AcquireOutcome, GaugeSource, MetricsSink } from '../metrics';

interface Instruments {
  readonly count: Api.ObservableUpDownCounter;
  readonly idleMax: Api.ObservableUpDownCounter;
  readonly idleMin: Api.ObservableUpDownCounter;
  readonly max: Api.ObservableUpDownCounter;
  readonly pending: Api.ObservableUpDownCounter;
  readonly timeouts: Api.Counter;
  readonly createTime: Api.Histogram;
  readonly waitTime: Api.Histogram;
  readonly useTime: Api.Histogram;
}

/** The semantic conventions' advice for these histograms, in seconds. */
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

const byMeter = new WeakMap<Api.Meter, Instruments>();

function instrumentsOf(meter: Api.Meter): Instruments {
  let instruments = byMeter.get(meter);
  if (instruments !== undefined) return instruments;
  const histogram = (name: string, description: string): Api.Histogram =>
    meter.createHistogram(name, { description, unit: 's', advice: { explicitBucketBoundaries: SECONDS_BUCKETS } });
  instruments = {
    count: meter.createObservableUpDownCounter('db.client.connection.count', { description: 'The number of connections that are currently in state described by the state attribute', unit: '{connection}' }),
    idleMax: meter.createObservableUpDownCounter('db.client.connection.idle.max', { description: 'The maximum number of idle open connections allowed', unit: '{connection}' }),
    idleMin: meter.createObservableUpDownCounter('db.client.connection.idle.min', { description: 'The minimum number of idle open connections allowed', unit: '{connection}' }),
    max: meter.createObservableUpDownCounter('db.client.connection.max', { description: 'The maximum number of open connections allowed', unit: '{connection}' }),
    pending: meter.createObservableUpDownCounter('db.client.connection.pending_requests', { description: 'The number of current pending requests for an open connection', unit: '{request}' }),
    timeouts: meter.createCounter('db.client.connection.timeouts', { description: 'The number of connection timeouts that have occurred trying to obtain a connection from the pool', unit: '{timeout}' }),
    createTime: histogram('db.client.connection.create_time', 'The time it took to create a new connection'),
    waitTime: histogram('db.client.connection.wait_time', 'The time it took to obtain an open connection from the pool'),
    useTime: histogram('db.client.connection.use_time', 'The time between borrowing a connection and returning it to the pool'),
  };
  byMeter.set(meter, instruments);
  return instruments;
}

/** A pool's metrics on `meter`; `detach()` (at close) stops its gauges. */
export function createOtelMetrics(meter: Api.Meter, source: GaugeSource, attributes: Api.Attributes, min: number): MetricsSink {
  const i = instrumentsOf(meter);
  const idle: Api.Attributes = { ...attributes, 'db.client.connection.state': 'idle' };
  const used: Api.Attributes = { ...attributes, 'db.client.connection.state': 'used' };
  const observables = [i.count, i.idleMax, i.idleMin, i.max, i.pending];
  const observe: Api.BatchObservableCallback = (result) => {
    const g = source.gaugeSnapshot();
    result.observe(i.count, g.idle, idle);
    result.observe(i.count, g.active, used);
    // An idle connection is kept until idleTimeoutMs whatever the count: up to max may be idle.
    result.observe(i.idleMax, g.max, attributes);
    result.observe(i.idleMin, Math.min(min, g.max), attributes);
    result.observe(i.max, g.max, attributes);
    result.observe(i.pending, g.pending, attributes);
  };
  meter.addBatchObservableCallback(observe, observables);
  try {
    i.timeouts.add(0, attributes); // the series exists from the start, so a rate sees the first timeout
  } catch {
    // a meter that throws on recording: the pool works on without it
  }
  let attached = true;
  const noop = (): void => {};
  // Recorded on the pool's own paths (acquire, release): a meter that throws must not break them.
  const record = (histogram: Api.Histogram, seconds: number): void => {
    try {
      histogram.record(seconds, attributes);
    } catch {
      // dropped: telemetry never changes what the pool does
    }
  };
  return {
    acquired(waitSeconds: number) {
      record(i.waitTime, waitSeconds);
    },
    acquireFailed(outcome: Exclude<AcquireOutcome, 'success'>) {
      if (outcome !== 'timeout') return;
      try {
        i.timeouts.add(1, attributes);
      } catch {
        // dropped, as above
      }
    },
    released(leaseSeconds: number) {
      record(i.useTime, leaseSeconds);
    },
    connectionCreated(createSeconds: number) {
      record(i.createTime, createSeconds);
    },
    transaction: noop,
    connectionClosed: noop,
    leakDetected: noop,
    recovery: noop,
    detach() {
      if (!attached) return;
      attached = false;
      meter.removeBatchObservableCallback(observe, observables);
    },
  };
}
