DROP TABLE installation_markers;
