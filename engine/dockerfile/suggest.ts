// "Did you mean …?" for an unknown instruction: the nearest instruction name within two edits.
/** Every instruction keyword docker knows (MAINTAINER included: deprecated, still accepted). */
export const INSTRUCTION_NAMES = [
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
] as const;

/** The most edits (insert, delete, substitute) a near miss may be from a keyword. */
const MAX_DISTANCE = 2;

/**
 * The instruction `keyword` most likely meant (case-insensitive), or undefined when none is
 * within MAX_DISTANCE edits. Of equally near ones, the first in INSTRUCTION_NAMES wins.
 */
export function suggestInstruction(keyword: string): string | undefined {
  const word = keyword.toUpperCase();
  // Comparing long words costs their product: nothing that long is a near miss anyway.
  if (word.length > 'HEALTHCHECK'.length + MAX_DISTANCE) return undefined;
  let best: { name: string; distance: number } | undefined;
  for (const name of INSTRUCTION_NAMES) {
    const distance = editDistance(word, name);
    if (distance <= MAX_DISTANCE && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Levenshtein distance, one row at a time. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
