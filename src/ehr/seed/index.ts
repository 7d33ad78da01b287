/** Synthetic demo data for the EHR side (no real people). */
export {
  DEMO_PAYER_IDENTIFIER,
  DEMO_SYSTEM,
  demoBundle,
  MRN_SYSTEM,
  seedDemoData,
  SSN_SYSTEM,
  type DemoKey,
  type DemoRefs,
} from './demo.js';
