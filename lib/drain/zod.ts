/**
 * zod as popdrain loads it: `zod/mini` (functions instead of methods, so a bundle keeps only the
 * schema kinds and checks it uses, and a schema is cheaper to build) with the English messages
 * the full `zod` registers on its own. The mailbox file and the Lambdas' environment are
 * validated once per cold start; this keeps that cost and the bundle small. Import it as
 * `import * as z from '.../zod.js'`, not from 'zod', so the messages stay English whichever
 * module validates first (a re-export, not a namespace value, so bundles still tree-shake it).
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

export * from 'zod/mini';
