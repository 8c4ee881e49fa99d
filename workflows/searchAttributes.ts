// The search attributes a build carries, so builds can be listed and filtered as records
// through Temporal's visibility (`strata builds ls`). Plain key objects: workflow code may
// import values only from @temporalio/workflow and workflows/.
import type { SearchAttributeType } from '@temporalio/common';

/** Temporal's SearchAttributeKey (not exported by the package's index): a name and its type. */
export interface SearchAttributeKey<T extends SearchAttributeType> {
  name: string;
  type: T;
}

/** Every tag the build names (normalized, e.g. `docker.io/library/app:latest`). */
export const TAGS_ATTRIBUTE: SearchAttributeKey<'KEYWORD_LIST'> = { name: 'StrataTags', type: 'KEYWORD_LIST' };
/** The build context's digest; a retry with a new context replaces it. */
export const CONTEXT_ATTRIBUTE: SearchAttributeKey<'KEYWORD'> = { name: 'StrataContext', type: 'KEYWORD' };
/** A BuildStatus: running, waiting (for a retry), succeeded, failed or cancelled. */
export const STATUS_ATTRIBUTE: SearchAttributeKey<'KEYWORD'> = { name: 'StrataStatus', type: 'KEYWORD' };

/** The ID of the store of the client that started the build: `strata builds ls` shows its own store's. */
export const STORE_ATTRIBUTE: SearchAttributeKey<'KEYWORD'> = { name: 'StrataStore', type: 'KEYWORD' };

/** What the server must know before a build starts (the embedded server registers these). */
export const BUILD_SEARCH_ATTRIBUTES = [TAGS_ATTRIBUTE, CONTEXT_ATTRIBUTE, STATUS_ATTRIBUTE, STORE_ATTRIBUTE] as const;

/** Temporal sets this one itself on every run a schedule starts: the schedule's ID. */
export const SCHEDULE_ATTRIBUTE_NAME = 'TemporalScheduledById';
