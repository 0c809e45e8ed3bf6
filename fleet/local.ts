/**
 * The fleet of a local data folder, for commands that only read it or follow it (`wott score show`, standalone
 * `wott scoring`, `wott mosquitto sync`) and need neither the CA's keys nor its passphrase. With `store: { postgres }`
 * in wott.yaml the inventory is that database instead of the folder's SQLite file.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openSelectedInventory, openSqliteInventory, type InventoryStore, type StoreSelection } from '../store/index.js';
import { FleetView } from './view.js';

export const inventoryFile = (dataDir: string) => join(dataDir, 'inventory.db');

/** The inventory in `dataDir`, or undefined when there is none (scoring on a host without the CA). */
export function openLocalInventory(dataDir: string, options: { pollMs?: number } = {}): InventoryStore | undefined {
  return existsSync(inventoryFile(dataDir)) ? openSqliteInventory(inventoryFile(dataDir), options) : undefined;
}

/** The configured shared inventory (PostgreSQL) when there is one, else the one in `dataDir` if any. */
export async function openFleetInventory(dataDir: string, selection: StoreSelection | undefined, options: { pollMs?: number } = {}): Promise<InventoryStore | undefined> {
  return (await openSelectedInventory(selection)) ?? openLocalInventory(dataDir, options);
}

/** A FleetView over the inventory (undefined without one); `close` closes view and store. */
export async function openLocalView(dataDir: string, options: { pollMs?: number; store?: StoreSelection } = {}): Promise<{ view: FleetView; close(): Promise<void> } | undefined> {
  const store = await openFleetInventory(dataDir, options.store, options);
  if (!store) return undefined;
  try {
    const view = await FleetView.open(store);
    return {
      view,
      async close() {
        await view.close();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
