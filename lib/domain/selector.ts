import { compileGlob } from './glob.ts';
import type { ImageRecord } from './image.ts';
import type { Policy } from './policy.ts';

export interface SelectorResult {
  match: boolean;
  detail: string;
}

export interface SelectorOptions {
  /**
   * Apply only the exclusions (tags and name patterns). For ami-dr's own copies: the includes were applied to their
   * source when they were made (and a tag deny list may have dropped the tags they name), so only the exclusions
   * are applied again; exclusions can only narrow.
   */
  exclusionsOnly?: boolean;
}

export type SelectorMatcher = (image: Pick<ImageRecord, 'name' | 'tags'>, options?: SelectorOptions) => SelectorResult;

/**
 * The policy's selector, compiled once: every include tag (`*`: any value), no exclude tag, a name pattern (if
 * any), no excluded name pattern. The detail names the first rule that left the image out.
 */
export function compileSelector(selector: Policy['selector']): SelectorMatcher {
  const include = Object.entries(selector.includeTags);
  const exclude = Object.entries(selector.excludeTags);
  const names = selector.namePatterns.map(compileGlob);
  const excludeNames = selector.excludeNamePatterns.map((p) => ({ pattern: p, matches: compileGlob(p) }));
  return (image, options = {}) => {
    const tagMatches = ([key, want]: [string, string]): boolean =>
      Object.hasOwn(image.tags, key) && (want === '*' || image.tags[key] === want);
    if (!options.exclusionsOnly) {
      const missing = include.find((e) => !tagMatches(e));
      if (missing) return { match: false, detail: `missing tag ${missing[0]}=${missing[1]}` };
    }
    const excludedTag = exclude.find(tagMatches);
    if (excludedTag) return { match: false, detail: `tag ${excludedTag[0]}=${image.tags[excludedTag[0]]} excludes it` };
    if (!options.exclusionsOnly && names.length > 0 && !names.some((matches) => matches(image.name))) {
      return { match: false, detail: `name ${image.name} matches none of ${selector.namePatterns.join(', ')}` };
    }
    const excludedName = excludeNames.find((e) => e.matches(image.name));
    if (excludedName)
      return { match: false, detail: `name ${image.name} matches excluded pattern ${excludedName.pattern}` };
    return { match: true, detail: 'selected' };
  };
}

/** One image against the selector (compile once with compileSelector when matching many). */
export function matchSelector(
  selector: Policy['selector'],
  image: Pick<ImageRecord, 'name' | 'tags'>,
  options?: SelectorOptions,
): SelectorResult {
  return compileSelector(selector)(image, options);
}
