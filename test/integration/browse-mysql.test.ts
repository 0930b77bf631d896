import { useTestMysql } from "../support/mariadb.js";
import { browseSuite } from "./browse-suite.js";

const mysql = useTestMysql();
browseSuite("mysql", (name) => mysql().database(name));
