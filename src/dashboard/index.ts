export { dashboardRoutes, DEFAULT_ASSETS_DIR, CONTENT_SECURITY_POLICY, type DashboardRoutesOptions } from './dashboard-routes';
export { DashboardAssets, ASSET_TYPES, type DashboardAsset } from './assets';
export { DashboardAccess, basicPassword, namesThisMachine, type DashboardAccessSettings } from './operator-access';
