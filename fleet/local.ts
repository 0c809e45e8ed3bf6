/**
 * The fleet of a local data folder, for commands that only read it or follow it (`wott score show`, standalone
 * `wott scoring`, `wott mosquitto sync`) and need neither the CA's keys nor its passphrase.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openSqliteInventory, type InventoryStore } from '../store/index.js';
import { FleetView } from './view.js';

export const inventoryFile = (dataDir: string) => join(dataDir, 'inventory.db');

/** The inventory in `dataDir`, or undefined when there is none (scoring on a host without the CA). */
export function openLocalInventory(dataDir: string, options: { pollMs?: number } = {}): InventoryStore | undefined {
  return existsSync(inventoryFile(dataDir)) ? openSqliteInventory(inventoryFile(dataDir), options) : undefined;
}

/** A FleetView over the inventory in `dataDir` (undefined without one); `close` closes view and store. */
export async function openLocalView(dataDir: string, options: { pollMs?: number } = {}): Promise<{ view: FleetView; close(): Promise<void> } | undefined> {
  const store = openLocalInventory(dataDir, options);
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
