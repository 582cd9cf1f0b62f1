/**
 * Preload (`node --import` or the first import of an entry): installs the scaled clock the
 * environment describes (scaled-clock.ts), before anything else reads the time. Without the
 * variables it does nothing.
 */
import { installScaledClock, scaledClockFromEnv } from './scaled-clock.js';

const spec = scaledClockFromEnv(process.env);
if (spec !== undefined) installScaledClock(spec, { scaleTimers: spec.scaleTimers });
