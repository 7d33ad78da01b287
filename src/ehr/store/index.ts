/**
 * The EHR's FHIR resource store (SQLite), its Bundle loader and the patient compartment rules
 * the FHIR API for payers applies.
 */
export { loadBundle, type LoadResult } from './bundle.js';
export { PATIENT_COMPARTMENT_TYPES, patientOf, patientsIn } from './compartment.js';
export { STORE_ERRORS, StoreError, type StoreErrorCode } from './errors.js';
export {
  freshId,
  openResourceStore,
  type OpenResourceStoreOptions,
  type ResourceStore,
  type SearchCriterion,
  type SearchOptions,
} from './resource-store.js';
export { SEARCH_PARAMETERS, searchParameter, type SearchParamDefinition } from './search-params.js';
