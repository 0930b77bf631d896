/**
 * Milliseconds since the epoch as the monotonic clock counts them: the wall clock when the
 * process started plus the time elapsed since. What the broker times itself (leases, nack
 * delays, redeliveries, heartbeats, read pauses) is timed by this, so a step of the wall clock
 * (NTP stepping it, a VM resumed on another host) neither holds a lease for an extra hour nor
 * ends every lease at once. It stays close to the wall clock (the two part only by the steps
 * and slewing since start-up), so such times still read as dates. Times that mean a date (publish
 * times, deliver_at, retention, gRPC deadlines) use Date.now().
 */
export function monotonicNow(): number {
  return Math.floor(performance.timeOrigin + performance.now());
}
