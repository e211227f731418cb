import type { Command } from 'commander';
import type { CliIo } from './context';

// Placeholder until src/capacity lands in this change; replaced by the capacity command.
export function registerCapacityCommand(_program: Command, _io: CliIo): void {}
