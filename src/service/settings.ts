/**
 * Live settings from a Dapr configuration store (spec.settings: a
 * configuration.redis Component), applied without a restart. Read whole at
 * start, then followed through the Configuration API's subscription. The
 * SDK's gRPC subscription ends silently when its stream breaks (a daprd
 * restart), so the whole set is also read again every RESYNC_MS. A bad value
 * is ignored with a warning naming the key, and the last good one stays.
 */
import type { DaprClient } from '@dapr/dapr';
import { LOG } from './logging.ts';

export interface Settings {
  /** notifications-enabled: completed and due tasks are announced to the notification service. */
  notificationsEnabled: boolean;
  /** max-page-size: the most tasks a page of GET /tasks holds, whatever ?limit= asks (1-100). */
  maxPageSize: number;
  /** read-only: writes answer 503 read_only (maintenance, a store being moved by hand). */
  readOnly: boolean;
}

export const DEFAULT_SETTINGS: Settings = { notificationsEnabled: true, maxPageSize: 100, readOnly: false };

/** Each key of the store, the setting it sets, and how its text is read (undefined: not a valid value). */
const KEYS = {
  'notifications-enabled': { field: 'notificationsEnabled', parse: (text: string) => boolean(text) },
  'max-page-size': {
    field: 'maxPageSize',
    parse: (text: string) =>
      /^[0-9]{1,3}$/.test(text) && Number(text) >= 1 && Number(text) <= 100 ? Number(text) : undefined,
  },
  'read-only': { field: 'readOnly', parse: (text: string) => boolean(text) },
} as const satisfies Record<string, { field: keyof Settings; parse: (text: string) => unknown }>;
export type SettingKey = keyof typeof KEYS;
export const SETTING_KEYS = Object.keys(KEYS) as SettingKey[];

const EXPECTED: Record<SettingKey, string> = {
  'notifications-enabled': 'true or false',
  'max-page-size': 'a whole number from 1 to 100',
  'read-only': 'true or false',
};

function boolean(text: string): boolean | undefined {
  const value = text.trim().toLowerCase();
  return value === 'true' ? true : value === 'false' ? false : undefined;
}

export interface SettingsLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * The settings `items` make of `current`: each known key with a valid value
 * sets its field; a bad value keeps the field as it was. Returns what changed
 * and what was refused, for the log.
 */
export function applySettings(
  current: Settings,
  items: Record<string, { value: string } | undefined>,
): { next: Settings; changed: { key: SettingKey; value: unknown }[]; refused: { key: SettingKey; value: string }[] } {
  const next: Settings = { ...current };
  const changed: { key: SettingKey; value: unknown }[] = [];
  const refused: { key: SettingKey; value: string }[] = [];
  for (const key of SETTING_KEYS) {
    const item = items[key];
    if (item === undefined) continue;
    const { field, parse } = KEYS[key];
    const value = parse(item.value);
    if (value === undefined) {
      refused.push({ key, value: item.value });
      continue;
    }
    if (next[field] !== value) {
      (next as Record<keyof Settings, unknown>)[field] = value;
      changed.push({ key, value });
    }
  }
  return { next, changed, refused };
}

/** How often the whole set is read again, in case the subscription's stream ended unseen. */
const RESYNC_MS = 15_000;

export class LiveSettings {
  private settings: Settings = DEFAULT_SETTINGS;
  private subscription: { stop(): unknown } | undefined;
  private timer: NodeJS.Timeout | undefined;

  get current(): Settings {
    return this.settings;
  }

  /** Takes `items` (from a read or a change), logging each change and each value refused. */
  take(items: Record<string, { value: string } | undefined>, log: SettingsLog): void {
    const { next, changed, refused } = applySettings(this.settings, items);
    for (const { key, value } of refused) {
      log.warn({ key, value, expected: EXPECTED[key], kept: this.settings[KEYS[key].field] }, LOG.settingIgnored);
    }
    for (const { key, value } of changed) log.info({ key, value }, LOG.settingChanged);
    this.settings = next;
  }

  /** Reads `store` once (throws when it cannot), then follows it until stop(). `client`: a gRPC DaprClient. */
  async follow(client: DaprClient, store: string, log: SettingsLog): Promise<void> {
    const read = async (): Promise<void> => {
      const { items } = await client.configuration.get(store, SETTING_KEYS);
      this.take(items, log);
    };
    await read();
    // eslint-disable-next-line @typescript-eslint/require-await -- the SDK's callback type returns a promise.
    this.subscription = await client.configuration.subscribeWithKeys(store, SETTING_KEYS, async ({ items }) => {
      this.take(items, log);
    });
    this.timer = setInterval(() => {
      read().catch((error: unknown) => {
        log.warn({ err: error, store }, LOG.settingsUnread);
      });
    }, RESYNC_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.resolve(this.subscription?.stop());
  }
}
