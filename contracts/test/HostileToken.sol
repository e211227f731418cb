// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * A token that calls back into the marketplace from inside every transfer out of it, to prove
 * the marketplace's guards hold. The re-entrant call's revert is swallowed and its selector kept,
 * so a test can check both that the outer call completed once and why the inner one failed.
 */
contract HostileToken is ERC20 {
    address public target;
    bytes public payload;
    bool public reentered;
    bool public reentrySucceeded;
    bytes4 public reentryError;

    constructor() ERC20("Hostile", "HOST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        reentered = false;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from == target && target != address(0) && !reentered) {
            reentered = true;
            (bool ok, bytes memory ret) = target.call(payload);
            reentrySucceeded = ok;
            if (!ok && ret.length >= 4) reentryError = bytes4(ret);
        }
    }
}
