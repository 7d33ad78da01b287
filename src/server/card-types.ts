/** The card types each service can return: its own plus the topics of the payer's rules (dev-5). */
import { HOOKS } from '../crd/hooks.js';
import type { HookName } from '../crd/types.js';
import type { RulesFile } from '../rules/index.js';

/** Card types per hook, computed once from the loaded rules. */
export function cardTypesByHook(rules: RulesFile): (hook: HookName) => readonly string[] {
  const byHook = new Map<HookName, string[]>();
  for (const def of Object.values(HOOKS)) {
    const types = new Set(def.cardTypes);
    // Encounter hooks carry no orders, so order rules never produce cards there.
    if (def.cardTypes.length > 0) {
      for (const payer of rules.payers) {
        const all = [...payer.rules, ...payer.plans.flatMap((p) => p.rules)];
        for (const rule of all) {
          if (rule.hooks && !rule.hooks.includes(def.hook)) continue;
          for (const card of rule.cards) types.add(card.topic);
        }
      }
    }
    byHook.set(def.hook, [...types]);
  }
  return (hook) => byHook.get(hook) ?? [];
}
